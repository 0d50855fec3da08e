"""``nexus registry``: registered model versions, their lineage, and promote/rollback of a deployment.

Example:
    nexus registry list
    nexus registry show champion
    nexus registry promote --deployment nexus-detector
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

app = typer.Typer(help="MLflow model registry: versions, lineage, promote, rollback.", no_args_is_help=True)

ModelOption = Annotated[str, typer.Option("--model", help="Registered model name.")]
DeploymentOption = Annotated[str, typer.Option("--deployment", help="Local deployment name.")]


@app.command("list")
def list_command(model: ModelOption = "nexus-detector") -> None:
    """Versions, newest first, with aliases, status and metrics."""
    from nexus.registry import ModelRegistry

    registry = ModelRegistry(name=model)
    registry.require_registered()
    typer.echo(json.dumps([v.to_dict() for v in registry.versions()], indent=2))


@app.command("show")
def show_command(
    reference: Annotated[str, typer.Argument(help="Version number or alias (champion, challenger).")],
    model: ModelOption = "nexus-detector",
) -> None:
    """One version with its lineage: MLflow run, dataset DVC hash, commit, pipeline run, evaluation report."""
    from nexus.registry import ModelRegistry

    registry = ModelRegistry(name=model)
    registry.require_registered()
    typer.echo(json.dumps(registry.require(reference).to_dict(), indent=2))


@app.command("promote")
def promote_command(deployment: DeploymentOption = "nexus-detector") -> None:
    """Make the deployment's challenger the champion (registry alias, record, running server)."""
    from nexus.serving.rollout import promote_deployment
    from nexus.settings import NexusSettings

    typer.echo(json.dumps(promote_deployment(NexusSettings.from_env(), deployment).to_dict(), indent=2))


@app.command("rollback")
def rollback_command(deployment: DeploymentOption = "nexus-detector") -> None:
    """Drop the deployment's challenger, or restore its previous champion."""
    from nexus.serving.rollout import rollback_deployment
    from nexus.settings import NexusSettings

    typer.echo(json.dumps(rollback_deployment(NexusSettings.from_env(), deployment).to_dict(), indent=2))
