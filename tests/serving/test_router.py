"""Canary router against real predictors: split, stickiness, labels, counters, promote, rollback."""

from __future__ import annotations

import httpx
import pytest
from serving_client import MODEL_NAME, RouterThread, b64

from nexus.cli.main import main as nexus_main
from nexus.serving.launcher import free_port
from nexus.serving.router import CanaryRouter, RollbackPolicy, Upstream, VersionStats


def predict(url: str, jpeg: bytes, user: str | None = None) -> httpx.Response:
    headers = {"X-User-Id": user} if user else {}
    body = {"instances": [{"b64": b64(jpeg)}]}
    return httpx.post(f"{url}/v1/models/{MODEL_NAME}:predict", json=body, headers=headers, timeout=30)


@pytest.fixture
def canary(predictor, challenger):
    def make(percent: float, policy: RollbackPolicy | None = None, challenger_url: str | None = None):
        router = CanaryRouter(
            Upstream("v1", predictor.url),
            Upstream("v2", challenger_url or challenger.url),
            percent=percent,
            policy=policy or RollbackPolicy(enabled=False),
            seed=0,
        )
        return RouterThread(router)

    return make


@pytest.mark.parametrize(("percent", "expected"), [(0, {"v1"}), (100, {"v2"})])
def test_percent_extremes(canary, jpegs, percent, expected):
    with canary(percent) as running:
        versions = set()
        for i in range(6):
            response = predict(running.url, jpegs[0], user=f"user-{i}")
            assert response.status_code == 200
            assert response.headers["X-Model-Version"] == response.json()["model_version"]
            versions.add(response.headers["X-Model-Version"])
    assert versions == expected


def test_sticky_users_and_a_fair_split(canary, jpegs):
    with canary(50) as running:
        first = {
            user: predict(running.url, jpegs[1], f"u{user}").headers["X-Model-Version"] for user in range(12)
        }
        again = {
            user: predict(running.url, jpegs[2], f"u{user}").headers["X-Model-Version"] for user in range(12)
        }
        assert first == again  # the same user always meets the same version
        assert set(first.values()) == {"v1", "v2"}
        # without a user id the choice is random per request
        anonymous = {predict(running.url, jpegs[0]).headers["X-Model-Version"] for _ in range(12)}
        assert anonymous == {"v1", "v2"}
        status = httpx.get(f"{running.url}/admin/status").json()
        assert sum(s["requests"] for s in status["stats"].values()) == 36
        assert all(s["errors"] == 0 for s in status["stats"].values())
        metrics = httpx.get(f"{running.url}/metrics").text
        assert 'nexus_router_requests_total{version="v2"}' in metrics
        assert "nexus_router_latency_seconds_bucket" in metrics


def test_bucketing_is_close_to_the_percentage():
    router = CanaryRouter(Upstream("a", "http://x:1"), Upstream("b", "http://x:2"), percent=20, seed=1)
    share = sum(router.choose(f"user-{i}") == "b" for i in range(5000)) / 5000
    assert 0.17 < share < 0.23


def test_errors_pass_through_labelled(canary, jpegs):
    with canary(100) as running:
        response = httpx.post(
            f"{running.url}/v1/models/{MODEL_NAME}:predict", json={"instances": [{"b64": b64(b"junk")}]}
        )
        assert response.status_code == 400
        assert response.json()["model_version"] == "v2" and "decodable" in response.json()["error"]
        assert httpx.get(f"{running.url}/v2/models/{MODEL_NAME}").json()["parameters"]["version"] == "v1"


def test_versioned_routes_reach_that_version_whatever_the_split(canary, jpegs):
    body = {"inputs": [{"name": "images", "shape": [1], "datatype": "BYTES", "data": [b64(jpegs[0])]}]}
    with canary(0) as running:  # no traffic for v2 in the split, yet it answers when asked by name
        for version in ("v1", "v2", "v2"):
            response = httpx.post(f"{running.url}/v2/models/{MODEL_NAME}/versions/{version}/infer", json=body)
            assert response.status_code == 200, response.text
            assert response.headers["X-Model-Version"] == response.json()["model_version"] == version
        metadata = httpx.get(f"{running.url}/v2/models/{MODEL_NAME}/versions/v2").json()
        assert metadata["name"] == MODEL_NAME and metadata["model_version"] == "v2"
        assert httpx.get(f"{running.url}/v2/models/{MODEL_NAME}/versions/v2/ready").status_code == 200
        stats = httpx.get(f"{running.url}/admin/status").json()["stats"]
        assert (stats["v1"]["requests"], stats["v2"]["requests"]) == (1, 2)
        missing = httpx.post(f"{running.url}/v2/models/{MODEL_NAME}/versions/v9/infer", json=body)
        assert missing.status_code == 404
        assert "'v9'" in missing.json()["error"] and "v1, v2" in missing.json()["error"]
        assert httpx.post(f"{running.url}/admin/rollback").status_code == 200
        gone = httpx.post(f"{running.url}/v2/models/{MODEL_NAME}/versions/v2/infer", json=body)
        assert gone.status_code == 404 and "serving: v1" in gone.json()["error"]


def test_promote_and_rollback_through_the_cli(canary, jpegs, capsys):
    with canary(50) as running:
        assert nexus_main(["deploy", "traffic", "100", "--router", running.url]) == 0
        assert predict(running.url, jpegs[0], "anyone").headers["X-Model-Version"] == "v2"
        assert nexus_main(["deploy", "promote", "--router", running.url]) == 0
        status = httpx.get(f"{running.url}/admin/status").json()
        assert status["champion"]["version"] == "v2" and status["challenger"] is None
        assert predict(running.url, jpegs[0], "anyone").headers["X-Model-Version"] == "v2"
        assert nexus_main(["deploy", "rollback", "--router", running.url]) == 0
        assert '"changed": false' in capsys.readouterr().out
        assert nexus_main(["deploy", "traffic", "150", "--router", running.url]) == 2
    with canary(50) as running:
        assert nexus_main(["deploy", "rollback", "--router", running.url]) == 0
        assert {predict(running.url, jpegs[0], f"u{i}").headers["X-Model-Version"] for i in range(8)} == {
            "v1"
        }
        assert nexus_main(["deploy", "status", "--router", running.url]) == 0
    assert nexus_main(["deploy", "status", "--router", f"http://127.0.0.1:{free_port()}"]) == 2


def test_an_admin_token_guards_changes_to_the_rollout(predictor, challenger, jpegs, monkeypatch, capsys):
    router = CanaryRouter(
        Upstream("v1", predictor.url),
        Upstream("v2", challenger.url),
        percent=50,
        policy=RollbackPolicy(False),
    )
    with RouterThread(router, admin_token="s3cret") as running:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            for method, path, body in (
                ("POST", "/admin/promote", None),
                ("POST", "/admin/rollback", None),
                ("PUT", "/admin/traffic", {"percent": 100}),
            ):
                denied = httpx.request(method, f"{running.url}{path}", json=body, headers=headers)
                assert denied.status_code == 401 and "NEXUS_ROUTER_ADMIN_TOKEN" in denied.json()["error"]
        assert router.percent == 50 and router.challenger is not None  # nothing changed
        assert httpx.get(f"{running.url}/admin/status").status_code == 200  # reading stays open
        assert predict(running.url, jpegs[0], "anyone").status_code == 200  # so does inference
        assert nexus_main(["deploy", "traffic", "100", "--router", running.url]) == 2
        assert "router answered 401" in capsys.readouterr().err
        monkeypatch.setenv("NEXUS_ROUTER_ADMIN_TOKEN", "s3cret")
        assert nexus_main(["deploy", "traffic", "100", "--router", running.url]) == 0
        assert nexus_main(["deploy", "promote", "--router", running.url]) == 0
        assert router.champion.version == "v2" and router.challenger is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("10.0.0.5", False)],
)
def test_serve_warns_about_an_open_admin_only_off_loopback(host, loopback):
    from nexus.cli.serve import _loopback

    assert _loopback(host) is loopback


def test_a_dead_challenger_is_rolled_back_automatically(canary, jpegs):
    policy = RollbackPolicy(window=20, min_requests=4, max_error_rate_margin=0.1)
    dead = f"http://127.0.0.1:{free_port()}"
    with canary(50, policy=policy, challenger_url=dead) as running:
        answers = [predict(running.url, jpegs[0], f"user-{i}") for i in range(30)]
        assert {a.status_code for a in answers if a.headers["X-Model-Version"] == "v2"} == {502}
        status = httpx.get(f"{running.url}/admin/status").json()
        assert status["challenger"] is None
        (event,) = status["events"]
        assert event["automatic"] and "error rate" in event["reason"]
        assert all(a.status_code == 200 for a in answers[-5:])


@pytest.mark.parametrize(
    ("champion", "challenger", "policy", "reason"),
    [
        ([(False, 0.01)] * 10, [(True, 0.01)] * 10, RollbackPolicy(min_requests=5), "error rate"),
        ([(False, 0.01)] * 10, [(False, 0.05)] * 10, RollbackPolicy(min_requests=5), "p95"),
        ([(False, 0.01)] * 10, [(False, 0.012)] * 10, RollbackPolicy(min_requests=5), None),
        ([(False, 0.01)] * 10, [(True, 0.01)] * 3, RollbackPolicy(min_requests=5), None),
        ([(True, 0.01)] * 10, [(True, 0.01)] * 10, RollbackPolicy(min_requests=5), None),
        ([(False, 0.01)] * 10, [(True, 0.01)] * 10, RollbackPolicy(enabled=False), None),
    ],
)
def test_rollback_rule(champion, challenger, policy, reason):
    router = CanaryRouter(Upstream("a", "http://x:1"), Upstream("b", "http://x:2"), 50, policy=policy)
    for version, samples in (("a", champion), ("b", challenger)):
        router.stats[version] = VersionStats(policy.window)
        for error, latency in samples:
            router.stats[version].record(error, latency)
    got = router.rollback_reason()
    assert (got is None) if reason is None else (reason in got)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"window": 0}, "window"),
        ({"min_requests": 0}, "min_requests"),
        ({"max_error_rate_margin": 2}, "max_error_rate_margin"),
        ({"max_p95_margin": -1}, "max_p95_margin"),
    ],
)
def test_rollback_policy_is_validated(kwargs, word):
    with pytest.raises(ValueError, match=word):
        RollbackPolicy(**kwargs)


@pytest.mark.parametrize(
    ("champion", "challenger", "percent", "word"),
    [
        (Upstream("a", "http://x:1"), Upstream("a", "http://x:2"), 10, "different version"),
        (Upstream("a", "http://x:1"), Upstream("b", "http://x:2"), 101, "percent"),
    ],
)
def test_router_config_is_validated(champion, challenger, percent, word):
    with pytest.raises(ValueError, match=word):
        CanaryRouter(champion, challenger, percent)
    with pytest.raises(ValueError, match="http"):
        Upstream("a", "x:1")
