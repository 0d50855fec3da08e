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
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Reuse outputs of unchanged steps (local runs).")
    ] = True,
    host: Annotated[
        str | None,
        typer.Option(
            "--host", help="Kubeflow Pipelines host: submit instead of running locally.", envvar="KFP_HOST"
        ),
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Afterwards serve the deployment's champion in the background.")
    ] = False,
    port: Annotated[
        int | None, typer.Option("--port", help="Port for --serve (a free one by default).")
    ] = None,
) -> None:
    """Run a pipeline locally (kfp.local SubprocessRunner in this environment), or submit it to Kubeflow."""
    from nexus.pipelines import PipelineFailed, load_pipeline, run_pipeline_locally, submit_pipeline

    load_pipeline(name)
    arguments = _parse_arguments(args or [])
    if host:
        run_id = submit_pipeline(name, host, arguments)
        typer.echo(f"submitted {name!r} to {host}: run {run_id}")
        return
    try:
        run_pipeline_locally(name, root.resolve(), arguments, enable_caching=cache)
    except PipelineFailed as error:
        raise NexusError(f"pipeline {name!r} failed: {error}") from error
    except RuntimeError as error:
        raise NexusError(f"pipeline {name!r} failed: {str(error).splitlines()[0]}") from error
    typer.echo(f"pipeline {name!r} finished; artifacts under {root.resolve()}")
    if serve:
        _serve_champion(str(arguments.get("deployment", "nexus-detector")), port)


def _serve_champion(deployment: str, port: int | None) -> None:
    """Start the deployment's server and print where it answers and what it serves (with lineage)."""
    from nexus.registry import ModelRegistry
    from nexus.serving.deployment import LocalDeployment, start_server
    from nexus.settings import NexusSettings

    settings = NexusSettings.from_env()
    record = LocalDeployment.load(settings, deployment)
    if record.champion is None:
        raise NexusError(f"deployment {deployment!r} has no champion: the gate stopped every model so far")
    record = start_server(record, port=port)
    champion = ModelRegistry(settings, record.registered_model).require(record.champion)
    lines = {
        "endpoint": f"{record.url}/v2/models/{deployment}/infer",
        "KServe v1": f"{record.url}/v1/models/{deployment}:predict",
        "serving": f"champion {champion.uri}"
        + (f", challenger v{record.challenger} at {record.canary_percent:g}%" if record.challenger else ""),
        "mlflow run": f"{champion.run_id} ({settings.mlflow_tracking_uri})",
        "metrics": ", ".join(f"{k} {v:.4f}" for k, v in champion.lineage.metrics.items()),
        "dataset (DVC hash)": champion.lineage.dataset_dvc_hash,
        "pipeline run": champion.lineage.pipeline_run,
        "evaluation report": champion.lineage.evaluation_report,
        "stop it with": f"nexus deploy down {deployment}",
    }
    for key, value in lines.items():
        typer.echo(f"{key:>20}: {value}")
