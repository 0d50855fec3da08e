"""``nexus data``: synthesize, import, export, validate and describe datasets."""

from __future__ import annotations

import typer

app = typer.Typer(help="Datasets: synth, import, export-coco, validate, stats.", no_args_is_help=True)
