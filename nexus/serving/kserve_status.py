"""What a KServe InferenceService is serving: its URL and readiness, the predictor revisions that carry
traffic (champion and challenger of a canary), and, from Prometheus, each revision's requests, error
rate and p95 inference time: the cluster counterpart of the local router's ``/admin/status``.

Example:
    nexus deploy status --kserve detector --namespace vision --prometheus http://prometheus:9090
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from nexus.errors import DeploymentError
from nexus.serving.kserve_guard import DURATION, read_canary, revision_health


def kserve_status(
    name: str, namespace: str, prometheus_url: str | None = None, window: str = "5m"
) -> dict[str, Any]:
    """Read the InferenceService ``name`` (and, with ``prometheus_url``, its revisions' health).

    Args:
        name: the InferenceService.
        namespace: its namespace.
        prometheus_url: a Prometheus that scrapes the predictors; without it no health is reported.
        window: the Prometheus range the health covers (``5m``, ``1h``).

    Returns:
        ``url``, ``ready`` (True, False or None before KServe reports it) and ``reason`` when not ready,
        ``storage_uri``, ``canary_traffic_percent`` as asked in the spec, ``traffic`` (revision,
        percent, latest) as KServe routes it, ``champion``/``challenger``/``challenger_percent`` of a
        running canary, and ``health`` per revision when Prometheus was given.

    Raises:
        DeploymentError: the cluster or Prometheus could not be read, or answered in another shape.

    Example:
        >>> kserve_status("detector", "vision")["ready"]  # doctest: +SKIP
        True
    """
    if not DURATION.fullmatch(window):
        raise DeploymentError(f"window {window!r} must be a Prometheus duration such as 5m, 30s or 1h")
    inference_service, state = read_canary(name, namespace)
    spec = _mapping(inference_service.get("spec"))
    status = _mapping(inference_service.get("status"))
    predictor_spec = _mapping(spec.get("predictor"))
    predictor_status = _mapping(_mapping(status.get("components")).get("predictor"))
    ready, reason = _ready(status)
    report: dict[str, Any] = {
        "inferenceservice": name,
        "namespace": namespace,
        "url": status.get("url") if isinstance(status.get("url"), str) else None,
        "ready": ready,
        "reason": reason,
        "storage_uri": _mapping(predictor_spec.get("model")).get("storageUri"),
        "canary_traffic_percent": predictor_spec.get("canaryTrafficPercent"),
        "traffic": [
            {
                "revision": route.get("revisionName"),
                "percent": route.get("percent", 0),
                "latest": bool(route.get("latestRevision")),
            }
            for route in predictor_status.get("traffic") or []
        ],
        "champion": state.champion,
        "challenger": state.challenger,
        "challenger_percent": state.percent,
    }
    if prometheus_url is not None:
        serving = {route["revision"] for route in report["traffic"] if route["percent"]}
        health = revision_health(prometheus_url, name, window)
        report["health"] = {
            version: asdict(found) for version, found in health.items() if not serving or version in serving
        }
    return report


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _ready(status: dict[str, Any]) -> tuple[bool | None, str | None]:
    """The ``Ready`` condition: True/False with its reason and message, None when not reported yet."""
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            ready = condition.get("status")
            if ready == "True":
                return True, None
            why = ": ".join(str(part) for part in (condition.get("reason"), condition.get("message")) if part)
            return (False if ready == "False" else None), why or None
    return None, None
