"""``nexus quickstart``: the main job on the embedded defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def quickstart_command(
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Default: $NEXUS_HOME/quickstart.")
    ] = None,
    images: Annotated[int, typer.Option("--images", help="Synthetic images to generate.")] = 360,
    imgsz: Annotated[int, typer.Option("--imgsz", help="Image and training size.")] = 160,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Dataset and training seed.")] = 0,
    model: Annotated[str, typer.Option("--model", help="Architecture YAML or weights.")] = "yolov8n.yaml",
) -> None:
    """Synthesize the sample dataset, train, export (ONNX + INT8), evaluate and predict; print the results."""
    from nexus.quickstart import QuickstartConfig, run_quickstart

    config = QuickstartConfig(
        workdir=workdir, images=images, imgsz=imgsz, epochs=epochs, seed=seed, model=model
    )
    summary = run_quickstart(config, log=typer.echo)
    typer.echo(json.dumps(summary, indent=2))
