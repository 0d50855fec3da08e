"""Automatic rollback of a KServe canary, from the predictors' own metrics in Prometheus.

KServe splits traffic between the predictor's latest revision (the challenger, ``canaryTrafficPercent``)
and the previous one (the champion) but never rolls back by itself. On KServe Serverless every
predictor labels its series with its Knative revision (``version``), so Prometheus holds each
revision's requests, server errors and inference latency. The guard compares the two over a window
with the same rule as the local canary router and, when the challenger is worse, sets
``canaryTrafficPercent`` to 0: the champion serves everything again.

Example:
    nexus deploy guard --kserve detector --prometheus http://prometheus.monitoring:9090 --once
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from nexus.errors import DeploymentError
from nexus.serving.kserve_apply import get_inference_service, set_canary_traffic
from nexus.serving.rollback_rule import VersionHealth, rollback_reason

DURATION = re.compile(r"[1-9][0-9]*(ms|s|m|h|d)")


@dataclass(frozen=True)
class CanaryGuardPolicy:
    """When the guard rolls a KServe canary back.

    Attributes:
        window: Prometheus range over which both revisions are compared (``5m``, ``30s``, ``1h``).
        min_requests: requests the challenger (and, for latency, the champion) must have answered in
            the window before the guard judges.
        max_error_rate_margin: roll back when the challenger's server-error rate exceeds the
            champion's by more than this (0.05 = 5 percentage points).
        max_p95_margin: roll back when the challenger's p95 inference time exceeds the champion's by
            more than this fraction (0.5 = 50 % slower).

    Example:
        >>> CanaryGuardPolicy(window="10m").min_requests
        20
    """

    window: str = "5m"
    min_requests: int = 20
    max_error_rate_margin: float = 0.05
    max_p95_margin: float = 0.5

    def __post_init__(self) -> None:
        if not DURATION.fullmatch(self.window):
            raise ValueError(
                f"window must be a Prometheus duration such as 5m, 30s or 1h, got {self.window!r}"
            )
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be at least 1, got {self.min_requests}")
        if not 0.0 <= self.max_error_rate_margin <= 1.0:
            raise ValueError(f"max_error_rate_margin must be within [0, 1], got {self.max_error_rate_margin}")
        if self.max_p95_margin <= -1.0:
            raise ValueError(f"max_p95_margin must be above -1 (a fraction), got {self.max_p95_margin}")


@dataclass(frozen=True)
class CanaryState:
    """Who serves: revision names and the challenger's share (``None`` when there is no canary)."""

    champion: str | None = None
    challenger: str | None = None
    percent: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.champion and self.challenger and self.percent)


def canary_state(inference_service: dict[str, Any]) -> CanaryState:
    """Read ``status.components.predictor.traffic``: the latest revision with a share is the challenger,
    the other revision with a share the champion."""
    predictor = inference_service.get("status", {}).get("components", {}).get("predictor", {})
    routes = [route for route in predictor.get("traffic") or [] if route.get("percent")]
    latest = [route for route in routes if route.get("latestRevision")]
    previous = [route for route in routes if not route.get("latestRevision")]
    if not latest or not previous:
        return CanaryState()
    return CanaryState(previous[0]["revisionName"], latest[0]["revisionName"], int(latest[0]["percent"]))


def revision_health(prometheus_url: str, model: str, window: str) -> dict[str, VersionHealth]:
    """Requests, server-error rate and p95 inference time per ``version`` label of ``model``."""
    selector = f'model="{model}"'
    requests = f"nexus_predictor_requests_total{{{selector}}}"
    totals = _query(prometheus_url, f"sum by (version) (increase({requests}[{window}]))")
    failed = f'nexus_predictor_requests_total{{{selector},outcome="error"}}'
    errors = _query(prometheus_url, f"sum by (version) (increase({failed}[{window}]))")
    p95 = _query(
        prometheus_url,
        "histogram_quantile(0.95, sum by (version, le) "
        f'(rate(nexus_predictor_stage_seconds_bucket{{{selector},stage="inference"}}[{window}])))',
    )
    health = {}
    for version, answered in totals.items():
        latency = p95.get(version)
        health[version] = VersionHealth(
            requests=answered,
            error_rate=errors.get(version, 0.0) / answered if answered else 0.0,
            p95_seconds=None if latency is None or math.isnan(latency) else latency,  # NaN: no traffic
        )
    return health


def _query(prometheus_url: str, expr: str) -> dict[str, float]:
    """An instant query's result as ``version -> value``."""
    url = f"{prometheus_url.rstrip('/')}/api/v1/query"
    try:
        body = httpx.get(url, params={"query": expr}, timeout=15.0).raise_for_status().json()
    except (httpx.HTTPError, ValueError) as error:
        raise DeploymentError(f"cannot query Prometheus at {prometheus_url}: {error}") from error
    if body.get("status") != "success":
        raise DeploymentError(f"Prometheus refused the query {expr!r}: {body.get('error')}")
    result = body["data"]["result"]
    return {sample["metric"].get("version", ""): float(sample["value"][1]) for sample in result}


@dataclass
class GuardDecision:
    """One check of the guard: the canary it saw, each revision's health, and what it did."""

    name: str
    namespace: str
    state: CanaryState
    health: dict[str, VersionHealth] = field(default_factory=dict)
    reason: str | None = None
    rolled_back: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "inferenceservice": self.name,
            "namespace": self.namespace,
            **asdict(self.state),
            "health": {version: asdict(health) for version, health in self.health.items()},
            "reason": self.reason,
            "rolled_back": self.rolled_back,
        }


def guard_canary(
    name: str, namespace: str, prometheus_url: str, policy: CanaryGuardPolicy | None = None
) -> GuardDecision:
    """Check the InferenceService's canary once; roll it back (``canaryTrafficPercent`` 0) when the
    challenger revision is worse than the champion by the policy's margins.

    Raises:
        DeploymentError: the cluster or Prometheus could not be read, or refused the rollback.
    """
    policy = policy or CanaryGuardPolicy()
    state = canary_state(get_inference_service(name, namespace))
    decision = GuardDecision(name, namespace, state)
    if not state.active:
        return decision
    decision.health = revision_health(prometheus_url, name, policy.window)
    decision.reason = rollback_reason(
        decision.health.get(state.champion or ""),
        decision.health.get(state.challenger or ""),
        policy.min_requests,
        policy.max_error_rate_margin,
        policy.max_p95_margin,
    )
    if decision.reason is not None:
        set_canary_traffic(name, namespace, 0)
        decision.rolled_back = True
    return decision
