"""Deploy a registered version as a canary, promote it, or roll it back — registry and server together.

The MLflow aliases (``champion``/``challenger``), the local deployment record and, when it runs, the
local server always move together. The first version deployed becomes the champion directly (there
is nothing to compare it with); later ones start as a challenger at ``canary_percent``.

Example:
    >>> deploy_version(settings, "nexus-detector", version="2", canary_percent=10)  # doctest: +SKIP
    >>> promote_deployment(settings, "nexus-detector")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import httpx

from nexus.errors import DeploymentError
from nexus.registry import CHALLENGER, ModelRegistry
from nexus.serving.deployment import LocalDeployment, start_server
from nexus.settings import NexusSettings


def _live(record: LocalDeployment, path: str, settings: NexusSettings) -> bool:
    """Tell a running canary router about the change; ``False`` when it cannot (then restart)."""
    if not record.is_running() or record.url is None:
        return False
    token = settings.router_admin_token
    headers = {"Authorization": b"Bearer " + token.encode()} if token else {}  # UTF-8, as the router reads it
    try:
        return httpx.post(f"{record.url}{path}", headers=headers, timeout=10.0).status_code == 200
    except httpx.HTTPError:
        return False


def deploy_version(
    settings: NexusSettings,
    deployment: str,
    version: str,
    canary_percent: float = 10.0,
    registered_model: str = "nexus-detector",
) -> LocalDeployment:
    """Serve registered ``version``: as champion if nothing is deployed yet, else as a canary.

    Deploying what is already deployed changes nothing. A running server is restarted with the new
    versions.

    Raises:
        DeploymentError: the percent is out of range.
        RegistryError: the version does not exist.
    """
    if not 0 < canary_percent <= 100:
        raise DeploymentError(f"canary percent must be within (0, 100], got {canary_percent}")
    registry = ModelRegistry(settings, registered_model)
    registry.require(version)
    record = LocalDeployment.load(settings, deployment, registered_model)
    if record.champion == version or (
        record.challenger == version and record.canary_percent == float(canary_percent)
    ):
        return record  # a re-run of the same deployment (e.g. a pipeline re-run) changes nothing
    if record.champion is None or canary_percent >= 100:
        registry.set_alias(CHALLENGER, version)
        registry.promote()
        record.champion, record.challenger, record.canary_percent = version, None, 0.0
        record.record("deploy", version=version, role="champion")
    else:
        registry.set_alias(CHALLENGER, version)
        record.challenger, record.canary_percent = version, float(canary_percent)
        record.record("deploy", version=version, role="challenger", percent=canary_percent)
    record.save()
    if record.is_running():
        start_server(record)
    return record


def promote_deployment(settings: NexusSettings, deployment: str) -> LocalDeployment:
    """Make the canary's challenger the champion (registry alias, record, live router).

    Raises:
        DeploymentError: no challenger is deployed.
    """
    record = LocalDeployment.load(settings, deployment)
    if record.challenger is None:
        raise DeploymentError(f"deployment {deployment!r} has no challenger to promote")
    _promote_challenger(record, ModelRegistry(settings, record.registered_model))
    if record.is_running() and not _live(record, "/admin/promote", settings):
        start_server(record)
    return record


def rollback_deployment(settings: NexusSettings, deployment: str) -> LocalDeployment:
    """Drop the challenger during a canary; otherwise restore the previous champion.

    Raises:
        DeploymentError: nothing is deployed.
        RegistryError: there is no previous champion to restore.
    """
    record = LocalDeployment.load(settings, deployment)
    if record.champion is None:
        raise DeploymentError(f"deployment {deployment!r} has nothing deployed to roll back")
    registry = ModelRegistry(settings, record.registered_model)
    if record.challenger is not None:
        _drop_challenger(record, registry)
        if record.is_running() and not _live(record, "/admin/rollback", settings):
            start_server(record)
        return record
    restored = registry.rollback()
    dropped = record.champion
    record.champion = restored.version
    record.record("rollback", dropped=dropped, version=restored.version)
    record.save()
    if record.is_running():
        start_server(record)
    return record


def _promote_challenger(record: LocalDeployment, registry: ModelRegistry, **details: object) -> None:
    """The challenger becomes the champion in the registry and the record (saved)."""
    registry.set_alias(CHALLENGER, record.challenger)
    registry.promote()
    previous = record.champion
    record.champion, record.challenger, record.canary_percent = record.challenger, None, 0.0
    record.record("promote", version=record.champion, previous=previous, **details)
    record.save()


def _drop_challenger(record: LocalDeployment, registry: ModelRegistry, **details: object) -> None:
    """The challenger leaves the registry's alias and the record (saved); the champion stays."""
    if registry.get(CHALLENGER) is None:
        registry.set_alias(CHALLENGER, record.challenger)
    registry.rollback()
    dropped = record.challenger
    record.challenger, record.canary_percent = None, 0.0
    record.record("rollback", dropped=dropped, version=record.champion, **details)
    record.save()


def persist_router_change(settings: NexusSettings, deployment: str, event: dict[str, Any]) -> bool:
    """Carry a promote or rollback that the deployment's router made (on its own, or asked over HTTP
    with ``nexus deploy promote|rollback``) into the registry and the record, so that a restart
    serves what the router serves. Returns whether anything changed.

    A change the record already shows (``nexus registry promote`` moves the record, then the router)
    is left alone, as is an event about versions the record does not hold.
    """
    record = LocalDeployment.load(settings, deployment)
    if record.challenger is None:
        return False
    label = f"v{record.challenger}"  # the router's version labels (serve_command_line)
    registry = ModelRegistry(settings, record.registered_model)
    if event.get("action") == "rollback" and event.get("challenger") == label:
        _drop_challenger(record, registry, automatic=bool(event.get("automatic")), reason=event.get("reason"))
        return True
    if event.get("action") == "promote" and event.get("champion") == label:
        _promote_challenger(record, registry, by="router")
        return True
    return False
