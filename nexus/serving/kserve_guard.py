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
        if not self.max_p95_margin > -1.0:  # NaN too: it would never roll back for latency
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
    the other revision with a share the champion. No status yet (KServe has not reconciled it) is no
    canary.

    Raises:
        DeploymentError: the status is there but not in KServe's shape (names what is wrong).
    """

    def mapping(value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise DeploymentError(f"{where} is {type(value).__name__} {str(value)[:60]!r}, not an object")
        return value

    status = mapping(inference_service, "the InferenceService").get("status")
    predictor = mapping(
        mapping(mapping(status, "status").get("components"), "status.components").get("predictor"),
        "status.components.predictor",
    )
    traffic = predictor.get("traffic") or []
    where = "status.components.predictor.traffic"
    if not isinstance(traffic, list) or not all(isinstance(route, dict) for route in traffic):
        raise DeploymentError(f"{where} is {str(traffic)[:80]!r}, not a list of routes")
    routes = []
    for route in traffic:
        percent = route.get("percent")
        if percent is None:
            continue
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise DeploymentError(
                f"{where} has a route with percent {percent!r}, not a whole number in [0, 100]"
            )
        if percent and not (isinstance(route.get("revisionName"), str) and route["revisionName"]):
            raise DeploymentError(f"{where} has a route carrying {percent}% without a revisionName")
        if percent:
            routes.append(route)
    latest = [route for route in routes if route.get("latestRevision")]
    previous = [route for route in routes if not route.get("latestRevision")]
    if not latest or not previous:
        return CanaryState()
    return CanaryState(previous[0]["revisionName"], latest[0]["revisionName"], latest[0]["percent"])


def read_canary(name: str, namespace: str) -> tuple[dict[str, Any], CanaryState]:
    """The InferenceService ``name`` as the cluster holds it, and the canary its status reports.

    Raises:
        DeploymentError: it cannot be read, or its status is not in KServe's shape.
    """
    inference_service = get_inference_service(name, namespace)
    try:
        return inference_service, canary_state(inference_service)
    except DeploymentError as error:
        raise DeploymentError(
            f"cannot read the canary of the InferenceService {name!r} in namespace {namespace!r}: {error}"
        ) from error


def health_queries(model: str, window: str) -> dict[str, str]:
    """The PromQL of ``revision_health``: requests, server errors and p95 inference time per version."""
    selector = f'model="{model}"'
    requests = f"nexus_predictor_requests_total{{{selector}}}"
    failed = f'nexus_predictor_requests_total{{{selector},outcome="error"}}'
    return {
        "requests": f"sum by (version) (increase({requests}[{window}]))",
        "errors": f"sum by (version) (increase({failed}[{window}]))",
        "p95": "histogram_quantile(0.95, sum by (version, le) "
        f'(rate(nexus_predictor_stage_seconds_bucket{{{selector},stage="inference"}}[{window}])))',
    }


def revision_health(prometheus_url: str, model: str, window: str) -> dict[str, VersionHealth]:
    """Requests, server-error rate and p95 inference time per ``version`` label of ``model``."""
    queries = health_queries(model, window)
    totals = _query(prometheus_url, queries["requests"])
    errors = _query(prometheus_url, queries["errors"])
    p95 = _query(prometheus_url, queries["p95"])
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
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else str(body)[:80]
        raise DeploymentError(f"Prometheus refused the query {expr!r}: {error}")
    try:
        result = body["data"]["result"]
        return {sample["metric"].get("version", ""): float(sample["value"][1]) for sample in result}
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as error:
        raise DeploymentError(
            f"Prometheus at {prometheus_url} answered the query {expr!r} with a result that is not an "
            f"instant vector ({type(error).__name__}: {error}): is it a Prometheus API?"
        ) from error


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
    _, state = read_canary(name, namespace)
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
        try:
            set_canary_traffic(name, namespace, 0)
        except DeploymentError as error:
            raise DeploymentError(
                f"the challenger {state.challenger} needs a rollback ({decision.reason}), "
                f"but it failed: {error}; roll back by hand: "
                f"nexus deploy rollback --kserve {name} --namespace {namespace}"
            ) from error
        decision.rolled_back = True
    return decision
