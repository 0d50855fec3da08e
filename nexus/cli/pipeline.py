"""``nexus pipeline``: compile the Kubeflow pipelines' IR YAML, or run one locally through kfp.local."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nexus.errors import NexusError

app = typer.Typer(help="Kubeflow pipelines: compile to IR YAML, run locally.", no_args_is_help=True)


def _parse_arguments(pairs: list[str]) -> dict[str, object]:
    arguments: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise NexusError(f"--arg {pair!r} must look like name=value")
        try:
            arguments[key] = json.loads(raw)
        except json.JSONDecodeError:
            arguments[key] = raw
    return arguments


@app.command("compile")
def compile_command(
    names: Annotated[list[str] | None, typer.Argument(help="Pipelines to compile (all by default).")] = None,
) -> None:
    """Regenerate the checked-in IR YAML under pipelines/."""
    from nexus.pipelines import PIPELINES, compile_pipeline

    for name in names or list(PIPELINES):
        typer.echo(str(compile_pipeline(name)))


@app.command("run")
def run_command(
    name: Annotated[str, typer.Argument(help="Pipeline name, e.g. training.")],
    args: Annotated[
        list[str] | None, typer.Option("--arg", help="Pipeline parameter name=value (repeat).")
    ] = None,
    root: Annotated[Path, typer.Option("--root", help="Local pipeline root for artifacts.")] = Path(
        ".nexus/pipeline-runs"
    ),
) -> None:
    """Run a pipeline locally (kfp.local SubprocessRunner in this environment)."""
    from nexus.pipelines import load_pipeline, run_pipeline_locally

    load_pipeline(name)
    try:
        run_pipeline_locally(name, root.resolve(), _parse_arguments(args or []))
    except RuntimeError as error:
        raise NexusError(f"pipeline {name!r} failed: {str(error).splitlines()[0]}") from error
    typer.echo(f"pipeline {name!r} finished; artifacts under {root.resolve()}")
