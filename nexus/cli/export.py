"""``nexus export WEIGHTS``: ONNX, FP16, INT8 and TensorRT exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def export_command(
    weights: Annotated[Path, typer.Argument(help="Ultralytics .pt weights to export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("export"),
    formats: Annotated[
        list[str], typer.Option("--format", "-f", help="onnx, fp16, int8 or engine; repeat for several.")
    ] = ["onnx"],  # noqa: B006
    half: Annotated[bool, typer.Option("--half", help="Also write an FP16 ONNX model.")] = False,
    int8: Annotated[
        bool, typer.Option("--int8", help="Also write an INT8 ONNX model (needs --data).")
    ] = False,
    data: Annotated[Path | None, typer.Option("--data", help="Dataset whose images calibrate INT8.")] = None,
    imgsz: Annotated[int | None, typer.Option("--imgsz", help="Default input size to record.")] = None,
    calibration_images: Annotated[int, typer.Option(help="Images used for INT8 calibration.")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Print the written files as JSON.")] = False,
) -> None:
    """Export trained weights to ONNX (dynamic batch, metadata embedded), FP16, INT8 or TensorRT."""
    from nexus.export import ExportConfig, export_model

    selected = [*formats, *(["fp16"] if half else []), *(["int8"] if int8 else [])]
    config = ExportConfig(
        weights=weights,
        out_dir=out,
        formats=tuple(selected),
        imgsz=imgsz,
        data=data,
        calibration_images=calibration_images,
    )
    result = export_model(config)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for name, path in result.files.items():
            typer.echo(f"{name:>6}: {path}")
