"""The KServe canary guard: reads the canary from the InferenceService's status and each revision's
health from a real Prometheus scraping real predictors, and rolls back a worse challenger."""

from __future__ import annotations

import httpx
import pytest
from prometheus_server import PrometheusServer
from serving_client import b64

from nexus.cli.main import main
from nexus.errors import DeploymentError
from nexus.serving.kserve_guard import CanaryGuardPolicy, CanaryState, canary_state, guard_canary
from nexus.serving.launcher import PredictorProcess
from nexus.serving.rollback_rule import VersionHealth, rollback_reason

ISVC = "/apis/serving.kserve.io/v1beta1/namespaces/vision/inferenceservices/detector"
CHAMPION, CHALLENGER = "detector-predictor-00001", "detector-predictor-00002"


def isvc_with_traffic(*routes: tuple[str, int, bool]) -> dict:
    """An InferenceService as KServe reports it: ``status.components.predictor.traffic``."""
    traffic = [
        {
            "revisionName": name,
            "percent": percent,
            "latestRevision": latest,
            "tag": "latest" if latest else "prev",
        }
        for name, percent, latest in routes
    ]
    return {"metadata": {"name": "detector"}, "status": {"components": {"predictor": {"traffic": traffic}}}}


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ([(CHALLENGER, 10, True), (CHAMPION, 90, False)], CanaryState(CHAMPION, CHALLENGER, 10)),
        ([(CHAMPION, 70, False), (CHALLENGER, 30, True)], CanaryState(CHAMPION, CHALLENGER, 30)),
        ([(CHALLENGER, 100, True)], CanaryState()),  # promoted: nothing to guard
        ([(CHALLENGER, 0, True), (CHAMPION, 100, False)], CanaryState()),  # rolled back
        ([(CHALLENGER, 10, True), (CHAMPION, 90, False), ("detector-predictor-00000", 0, False)],
         CanaryState(CHAMPION, CHALLENGER, 10)),  # a tag-only route carries no traffic
        ([], CanaryState()),
    ],
)  # fmt: skip
def test_canary_state_reads_the_traffic_split(routes, expected):
    assert canary_state(isvc_with_traffic(*routes)) == expected
    assert canary_state({"metadata": {"name": "detector"}}) == CanaryState()  # no status yet


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"window": "5 minutes"}, "Prometheus duration"),
        ({"window": "0m"}, "Prometheus duration"),
        ({"min_requests": 0}, "min_requests"),
        ({"max_error_rate_margin": 1.5}, "max_error_rate_margin"),
        ({"max_p95_margin": -1.0}, "max_p95_margin"),
    ],
)
def test_guard_policy_is_validated(kwargs, word):
    with pytest.raises(ValueError, match=word):
        CanaryGuardPolicy(**kwargs)


@pytest.mark.parametrize(
    ("champion", "challenger", "words"),
    [
        (VersionHealth(100, 0.0, 0.010), VersionHealth(40, 0.10, 0.010), "error rate 10.0%"),
        (VersionHealth(100, 0.0, 0.010), VersionHealth(40, 0.0, 0.016), "p95 latency 16.0 ms"),
        (VersionHealth(100, 0.0, 0.010), VersionHealth(40, 0.04, 0.014), None),  # within both margins
        (VersionHealth(100, 0.0, 0.010), VersionHealth(10, 0.50, 0.100), None),  # too few requests yet
        (VersionHealth(5, 0.0, 0.010), VersionHealth(40, 0.0, 0.100), None),  # champion too quiet for p95
        (None, VersionHealth(40, 0.10, None), "error rate"),  # errors count without a champion
        (VersionHealth(100, 0.0, None), VersionHealth(40, 0.0, 0.100), None),  # no latency known
        # just over the margin: enough decimals that the numbers show it
        (
            VersionHealth(100, 0.0, 0.010),
            VersionHealth(1990, 0.0503, 0.010),
            "5.03% exceeds the champion's 0.00%",
        ),
        (
            VersionHealth(100, 0.01, 0.010),
            VersionHealth(40, 0.0601, 0.010),
            "6.01% exceeds the champion's 1.00%",
        ),
        (VersionHealth(100, 0.0, 0.010), VersionHealth(10**6, 0.050004, 0.010), "5.0004% exceeds"),
    ],
)
def test_rollback_rule(champion, challenger, words):
    reason = rollback_reason(champion, challenger, 20, 0.05, 0.5)
    assert reason is None if words is None else words in reason


@pytest.fixture(scope="module")
def revisions(detect_onnx, predictor_logs):
    """Two revisions of the InferenceService ``detector``, labelled as Knative names them: the same
    model, the challenger run at 640 px instead of 96 (its inference is tens of times slower)."""
    with (
        PredictorProcess.start(
            detect_onnx, version=CHAMPION, model_name="detector", log_path=predictor_logs / "rev1.log"
        ) as champion,
        PredictorProcess.start(
            detect_onnx,
            version=CHALLENGER,
            model_name="detector",
            log_path=predictor_logs / "rev2.log",
            extra_args=["--imgsz", "640"],
        ) as challenger,
    ):
        yield champion, challenger


@pytest.fixture(scope="module")
def prometheus(revisions, tmp_path_factory, jpegs):
    """A real Prometheus that scraped both revisions before and after 25 requests each."""
    targets = [process.url.removeprefix("http://") for process in revisions]
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), targets) as server:
        server.wait_for("up", lambda result: len(result) == 2)
        before = {
            s["metric"]["version"]: float(s["value"][1])
            for s in server.query('sum by (version) (nexus_predictor_requests_total{model="detector"})')
        }
        for process in revisions:
            for index in range(25):
                body = {"instances": [{"b64": b64(jpegs[index % len(jpegs)])}]}
                reply = httpx.post(f"{process.url}/v1/models/detector:predict", json=body, timeout=30)
                assert reply.status_code == 200, reply.text
        expected = sum(before.values()) + 50
        server.wait_for(
            'sum(nexus_predictor_requests_total{model="detector"})',
            lambda result: bool(result) and float(result[0]["value"][1]) >= expected,
        )
        yield server


def test_guard_rolls_back_a_slower_challenger(kube_api, prometheus, capsys):
    kube_api.objects = {ISVC: isvc_with_traffic((CHALLENGER, 10, True), (CHAMPION, 90, False))}
    kube_api.existing = {ISVC}
    decision = guard_canary("detector", "vision", prometheus.url, CanaryGuardPolicy(window="10m"))
    assert decision.health[CHAMPION].requests >= 25 and decision.health[CHALLENGER].requests >= 25
    assert decision.health[CHALLENGER].error_rate == decision.health[CHAMPION].error_rate == 0.0
    slower = decision.health[CHALLENGER].p95_seconds / decision.health[CHAMPION].p95_seconds
    assert slower > 1.5, decision.health
    assert decision.rolled_back and "p95 latency" in decision.reason
    patches = [(path, body) for method, path, body, _ in kube_api.calls if method == "PATCH"]
    assert patches == [(ISVC, {"spec": {"predictor": {"canaryTrafficPercent": 0}}})]


@pytest.mark.parametrize(
    "policy",
    [
        CanaryGuardPolicy(window="10m", max_p95_margin=1000.0),  # tolerant of any slowdown
        CanaryGuardPolicy(window="10m", min_requests=10_000),  # not enough traffic to judge
    ],
    ids=["within-margins", "too-few-requests"],
)
def test_guard_leaves_a_canary_it_cannot_fault(kube_api, prometheus, policy):
    kube_api.objects = {ISVC: isvc_with_traffic((CHALLENGER, 10, True), (CHAMPION, 90, False))}
    decision = guard_canary("detector", "vision", prometheus.url, policy)
    assert decision.state.active and decision.reason is None and not decision.rolled_back
    assert [method for method, *_ in kube_api.calls] == ["GET"]


def test_guard_cli(kube_api, prometheus, capsys):
    kube_api.objects = {ISVC: isvc_with_traffic((CHALLENGER, 100, True))}  # promoted: nothing to guard
    argv = [
        "deploy",
        "guard",
        "--kserve",
        "detector",
        "--namespace",
        "vision",
        "--prometheus",
        prometheus.url,
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert '"rolled_back": false' in out and '"challenger": null' in out
    assert main([*argv, "--window", "five minutes"]) == 2
    assert "Prometheus duration" in capsys.readouterr().err
    kube_api.objects = {}
    assert main(argv) == 2
    assert "no InferenceService 'detector' in namespace 'vision'" in capsys.readouterr().err


def test_guard_reports_an_unreachable_prometheus(kube_api):
    from nexus.serving.launcher import free_port

    kube_api.objects = {ISVC: isvc_with_traffic((CHALLENGER, 10, True), (CHAMPION, 90, False))}
    with pytest.raises(DeploymentError, match="cannot query Prometheus"):
        guard_canary("detector", "vision", f"http://127.0.0.1:{free_port()}")


def test_guard_component_rolls_back_through_the_same_rule(kube_api, prometheus):
    import json

    from components.deploy import guard

    kube_api.objects = {ISVC: isvc_with_traffic((CHALLENGER, 10, True), (CHAMPION, 90, False))}
    kube_api.existing = {ISVC}
    answer = guard.python_func(
        deployment="detector", prometheus_url=prometheus.url, namespace="vision", window="10m"
    )
    decision = json.loads(answer)
    assert decision["rolled_back"] and decision["challenger"] == CHALLENGER
    assert decision["health"][CHALLENGER]["requests"] >= 25


# ------------------------------------------------------------------ deploy status --kserve


def serving_isvc(*routes: tuple[str, int, bool], ready: str = "True", reason: str | None = None) -> dict:
    """``isvc_with_traffic`` with the spec, URL and Ready condition KServe reports."""
    isvc = isvc_with_traffic(*routes)
    isvc["spec"] = {
        "predictor": {"canaryTrafficPercent": 10, "model": {"storageUri": "s3://models/detector/v2"}}
    }
    condition = {"type": "Ready", "status": ready, **({"reason": reason} if reason else {})}
    isvc["status"] |= {"url": "http://detector.vision.example.com", "conditions": [condition]}
    return isvc


def test_status_reports_the_revisions_and_their_health(kube_api, prometheus):
    from nexus.serving.kserve_status import kserve_status

    kube_api.objects = {ISVC: serving_isvc((CHALLENGER, 10, True), (CHAMPION, 90, False))}
    report = kserve_status("detector", "vision", prometheus.url, window="10m")
    assert report["ready"] is True and report["reason"] is None
    assert report["url"] == "http://detector.vision.example.com"
    assert report["storage_uri"] == "s3://models/detector/v2" and report["canary_traffic_percent"] == 10
    assert (report["champion"], report["challenger"], report["challenger_percent"]) == (
        CHAMPION,
        CHALLENGER,
        10,
    )
    assert {route["revision"]: route["percent"] for route in report["traffic"]} == {
        CHAMPION: 90,
        CHALLENGER: 10,
    }
    health = report["health"]
    assert set(health) == {CHAMPION, CHALLENGER}
    assert health[CHAMPION]["requests"] >= 25 and health[CHALLENGER]["requests"] >= 25
    assert health[CHALLENGER]["p95_seconds"] > health[CHAMPION]["p95_seconds"]
    # a status is a read: nothing is patched
    assert [method for method, *_ in kube_api.calls] == ["GET"]


def test_status_lists_only_the_revisions_that_serve(kube_api, prometheus):
    from nexus.serving.kserve_status import kserve_status

    kube_api.objects = {ISVC: serving_isvc((CHALLENGER, 100, True))}  # promoted: the champion is gone
    report = kserve_status("detector", "vision", prometheus.url, window="10m")
    assert report["challenger"] is None and set(report["health"]) == {CHALLENGER}


@pytest.mark.parametrize(
    ("ready", "reason", "expected"),
    [
        ("True", None, (True, None)),
        ("False", "RevisionMissing", (False, "RevisionMissing")),
        ("Unknown", "Reconciling", (None, "Reconciling")),
    ],
)
def test_status_reports_readiness_without_prometheus(kube_api, ready, reason, expected):
    from nexus.serving.kserve_status import kserve_status

    kube_api.objects = {
        ISVC: serving_isvc((CHALLENGER, 10, True), (CHAMPION, 90, False), ready=ready, reason=reason)
    }
    report = kserve_status("detector", "vision")
    assert (report["ready"], report["reason"]) == expected and "health" not in report


def test_status_of_an_unreconciled_service(kube_api):
    from nexus.serving.kserve_status import kserve_status

    kube_api.objects = {ISVC: {"metadata": {"name": "detector"}, "spec": {"predictor": {}}}}
    report = kserve_status("detector", "vision")
    assert report["ready"] is None and report["traffic"] == [] and report["champion"] is None


def test_status_cli(kube_api, prometheus, capsys):
    import json

    kube_api.objects = {ISVC: serving_isvc((CHALLENGER, 10, True), (CHAMPION, 90, False))}
    argv = ["deploy", "status", "--kserve", "detector", "--namespace", "vision"]
    assert main([*argv, "--prometheus", prometheus.url, "--window", "10m"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["challenger"] == CHALLENGER and set(report["health"]) == {CHAMPION, CHALLENGER}
    assert main([*argv, "--window", "ten minutes"]) == 2
    assert "Prometheus duration" in capsys.readouterr().err
    kube_api.objects = {ISVC: {"status": {"components": {"predictor": {"traffic": "all of it"}}}}}
    assert main(argv) == 2
    assert "not a list of routes" in capsys.readouterr().err
    kube_api.objects = {}
    assert main(argv) == 2
    assert "no InferenceService 'detector' in namespace 'vision'" in capsys.readouterr().err
    assert main(["deploy", "status", "--kserve", "Detector!"]) == 2
    assert "DNS-1035" in capsys.readouterr().err
