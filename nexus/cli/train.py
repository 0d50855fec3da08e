"""``nexus train``: train a YOLO detect/segment model offline, tracked in MLflow."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer


def train_command(
    data: Annotated[
        Path, typer.Option("--data", help="YOLO dataset folder (with dataset.yaml) or its yaml.")
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model", help="Architecture YAML (yolov8n.yaml, yolov8n-seg.yaml, ...) or a .pt on disk."
        ),
    ] = "yolov8n.yaml",
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs to train.")] = 30,
    imgsz: Annotated[int, typer.Option("--imgsz", help="Training image size (multiple of 32).")] = 160,
    batch: Annotated[int, typer.Option("--batch", help="Images per batch (over all GPUs).")] = 16,
    nominal_batch: Annotated[
        int,
        typer.Option(
            "--nominal-batch",
            help="Images per optimizer step (Ultralytics' nbs; smaller batches accumulate gradients): "
            "16 suits a few hundred images, Ultralytics' own default is 64.",
        ),
    ] = 16,
    device: Annotated[
        str | None,
        typer.Option(
            "--device", help="cpu, a CUDA index (0) or several for DDP (0,1); default NEXUS_DEVICE."
        ),
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="detect or segment; inferred from the model by default.")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Run folder name under <home>/runs.")] = "train",
    project: Annotated[
        Path | None, typer.Option("--project", help="Folder holding the runs; <home>/runs by default.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue <project>/<name> from weights/last.pt and its MLflow run."),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Dataloader worker processes.")] = 0,
    patience: Annotated[
        int, typer.Option("--patience", help="Epochs without improvement before stopping.")
    ] = 100,
    plots: Annotated[
        bool, typer.Option("--plots/--no-plots", help="Save Ultralytics' plots (curves, batches) in the run.")
    ] = True,
    progress: Annotated[
        bool, typer.Option("--progress/--quiet", help="Show Ultralytics' log and progress bars.")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON on stdout (training log on stderr).")
    ] = False,
) -> None:
    """Train a YOLO model (from an architecture YAML or your own weights) and log it to MLflow."""
    from nexus.errors import NexusError
    from nexus.settings import NexusSettings
    from nexus.training import TrainConfig, train_model

    settings = NexusSettings.from_env()
    if nominal_batch < 1:
        raise NexusError(f"--nominal-batch must be at least 1 image per optimizer step, got {nominal_batch}")
    config = TrainConfig(
        data=data,
        model=model,
        task=task,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device or settings.device,
        workers=workers,
        seed=seed,
        patience=patience,
        name=name,
        project=project,
        resume=resume,
        extra={"nbs": nominal_batch, **({} if plots else {"plots": False})},
    )
    # With --json, stdout carries only the result: the training log goes to stderr.
    redirect = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    with redirect:
        result = train_model(config, settings, progress=progress)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    metrics = result.metrics
    rows = [
        ("run dir", str(result.run_dir)),
        ("best weights", str(result.best_weights)),
        ("task", result.task),
        ("epochs", str(result.epochs_completed)),
        ("mAP50", f"{metrics.get('mAP50', float('nan')):.4f}"),
        ("mAP50-95", f"{metrics.get('mAP50-95', float('nan')):.4f}"),
    ]
    if "mask_mAP50-95" in metrics:
        rows.append(("mask mAP50-95", f"{metrics['mask_mAP50-95']:.4f}"))
    rows.append(
        (
            "MLflow run",
            f"{result.mlflow_run_id} ({settings.mlflow_experiment} @ {settings.mlflow_tracking_uri})",
        )
    )
    for label, value in rows:
        typer.echo(f"{label + ':':<15}{value}")
