"""``nexus tune``: an Optuna study over YOLO hyperparameters; each trial a short training nested in MLflow."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer


def _space(text: str | None):
    from nexus.tuning import DEFAULT_SEARCH_SPACE, TuneConfigError, parse_search_space

    if text is None:
        return dict(DEFAULT_SEARCH_SPACE)
    path = Path(text).expanduser()
    source = (
        path.read_text(encoding="utf-8") if not text.lstrip().startswith("{") and path.is_file() else text
    )
    try:
        data = json.loads(source)
    except json.JSONDecodeError as error:
        raise TuneConfigError(
            f"--space is not JSON ({error.msg} at char {error.pos}); pass e.g. "
            '\'{"lr0": [0.0001, 0.1, "log"], "momentum": [0.6, 0.98]}\' or a .json file'
        ) from error
    return parse_search_space(data)


def tune_command(
    data: Annotated[
        Path, typer.Option("--data", help="YOLO dataset folder (with dataset.yaml) or its yaml.")
    ],
    trials: Annotated[
        int, typer.Option("--trials", help="Trials to run now (0: no tuning, print the defaults).")
    ] = 20,
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs of each trial.")] = 10,
    imgsz: Annotated[int, typer.Option("--imgsz", help="Training image size (multiple of 32).")] = 160,
    batch: Annotated[int, typer.Option("--batch", help="Images per batch.")] = 16,
    model: Annotated[
        str,
        typer.Option("--model", help="Architecture YAML (yolov8n.yaml, ...) or a .pt on disk."),
    ] = "yolov8n.yaml",
    device: Annotated[
        str | None, typer.Option("--device", help="cpu or one CUDA index (0); default NEXUS_DEVICE.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampler and of every training.")] = 0,
    metric: Annotated[
        str, typer.Option("--metric", help="Metric to maximize: mAP50-95, mAP50, precision, recall, ...")
    ] = "mAP50-95",
    space: Annotated[
        str | None,
        typer.Option(
            "--space",
            help='Search space as JSON (or a .json file), e.g. \'{"lr0": [0.0001, 0.1, "log"], '
            '"optimizer": {"choices": ["SGD", "AdamW"]}}\'; default: lr0, momentum, weight_decay, '
            "hsv_h/s/v, fliplr, mosaic.",
        ),
    ] = None,
    pruner: Annotated[
        str, typer.Option("--pruner", help="median (stop trials below the median per epoch) or none.")
    ] = "median",
    warmup_epochs: Annotated[
        int, typer.Option("--warmup-epochs", help="Epochs of each trial before it may be pruned.")
    ] = 1,
    study_name: Annotated[
        str, typer.Option("--study-name", help="Study name; the same name and storage continue a study.")
    ] = "tune",
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Journal file, SQLite file (.db) or database URL; default <home>/tuning/optuna.journal.",
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--quiet", help="Show Ultralytics' and Optuna's logs.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON on stdout (logs on stderr).")
    ] = False,
) -> None:
    """Tune training hyperparameters with Optuna and print the best ones."""
    from nexus.settings import NexusSettings
    from nexus.tuning import TuneConfig, tune

    settings = NexusSettings.from_env()
    config = TuneConfig(
        data=data,
        architecture=model,
        trials=trials,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device or settings.device,
        seed=seed,
        search_space=_space(space),
        metric=metric,
        pruner=pruner,
        pruner_warmup_epochs=warmup_epochs,
        study_name=study_name,
        storage=storage,
    )
    # With --json, stdout carries only the result: the training log goes to stderr.
    redirect = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    with redirect:
        result = tune(config, settings, progress=progress)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    if result.trials_run == 0:
        typer.echo("trials=0: no tuning; training uses Ultralytics' defaults:")
    else:
        best = (
            "none complete"
            if result.best_value is None
            else f"{result.best_value:.4f} (trial {result.best_trial})"
        )
        typer.echo(f"{'study:':<15}{result.study_name} @ {result.storage}")
        typer.echo(
            f"{'trials:':<15}{result.n_complete} complete, {result.n_pruned} pruned, "
            f"{result.n_failed} failed ({result.trials_run} run now)"
        )
        typer.echo(f"{'best ' + result.metric + ':':<15}{best}")
        typer.echo(
            f"{'MLflow run:':<15}{result.mlflow_parent_run_id} "
            f"({settings.mlflow_experiment} @ {settings.mlflow_tracking_uri})"
        )
        typer.echo("best params:" if result.best_value is not None else "no trial completed; defaults:")
    for name, value in result.best_params.items():
        typer.echo(
            f"  {name + ':':<15}{value:.6g}" if isinstance(value, float) else f"  {name + ':':<15}{value}"
        )
