"""``nexus drift REFERENCE CURRENT``: Evidently drift report of new images against the training data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def drift_command(
    reference: Annotated[
        Path, typer.Argument(help="Training reference: a dataset folder or YAML, or a folder of images.")
    ],
    current: Annotated[
        Path, typer.Argument(help="New data: a dataset folder or YAML, or a folder of images.")
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Detection model (.onnx/.pt/.engine): adds prediction statistics; ONNX "
            "backbone features become the embedding.",
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Reference split; 'all' for every split.")] = "train",
    current_split: Annotated[
        str, typer.Option("--current-split", help="Split of a current dataset; 'all' for every split.")
    ] = "all",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the report and JSON.")] = Path("drift"),
    drift_share: Annotated[
        float, typer.Option("--drift-share", help="Drift when this share of statistics drifted.")
    ] = 0.25,
    min_images: Annotated[int, typer.Option("--min-images", help="Fewest readable images per side.")] = 5,
    max_images: Annotated[
        int | None, typer.Option("--max-images", help="Use at most this many images per side.")
    ] = None,
    conf: Annotated[float, typer.Option("--conf", help="Confidence threshold of the model.")] = 0.25,
    embeddings: Annotated[
        bool, typer.Option("--embeddings/--no-embeddings", help="Also test image embeddings.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON summary.")] = False,
) -> None:
    """Compare new images with the training reference (exit 0 with or without drift; 2 on bad input)."""
    from nexus.drift import DriftConfig, detect_drift

    config = DriftConfig(
        drift_share=drift_share,
        embedding_drift=embeddings,
        min_images=min_images,
        confidence=conf,
        max_images=max_images,
    )
    result = detect_drift(
        reference,
        current,
        model=model,
        split=None if split == "all" else split,
        current_split=None if current_split == "all" else current_split,
        out_dir=out,
        config=config,
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(result.summary())
