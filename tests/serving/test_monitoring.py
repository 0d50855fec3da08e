"""Serving observability (``manifests/monitoring/``): the Prometheus rules pass ``promtool`` and its rule
unit tests, and a real Prometheus scraping real predictors and the canary router evaluates every
recording rule and every dashboard query to the numbers the traffic implies."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_server import PrometheusServer, tool
from serving_client import MODEL_NAME, RouterThread, b64

from nexus.serving.router import CanaryRouter, RollbackPolicy, Upstream

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "manifests" / "monitoring"
RULE_TESTS = Path(__file__).parent / "monitoring" / "serving_rules_test.yaml"


def rule_groups() -> dict:
    """The PrometheusRule's ``spec.groups`` as a plain Prometheus rules file."""
    manifest = yaml.safe_load((MONITORING / "serving-rules.yaml").read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    return {"groups": manifest["spec"]["groups"]}


def recorded_names() -> set[str]:
    return {
        rule["record"] for group in rule_groups()["groups"] for rule in group["rules"] if "record" in rule
    }


def dashboard() -> dict:
    return json.loads((MONITORING / "serving-dashboard.json").read_text())


def dashboard_queries(model: str, rate_interval: str) -> dict[str, str]:
    """Panel title -> PromQL with the dashboard's variables filled in."""
    return {
        panel["title"]: target["expr"].replace("$model", model).replace("$__rate_interval", rate_interval)
        for panel in dashboard()["panels"]
        for target in panel["targets"]
    }


@pytest.fixture
def rules_file(tmp_path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule_groups()))
    return path


def test_rules_pass_promtool_check(rules_file):
    count = sum(len(group["rules"]) for group in rule_groups()["groups"])
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {count} rules found" in result.stdout


def test_alerts_fire_for_the_versions_and_durations_specified(rules_file):
    """``promtool test rules``: which alerts fire, for which version, after how long, with which text."""
    shutil.copy(RULE_TESTS, rules_file.parent)
    result = subprocess.run(
        [tool("promtool"), "test", "rules", RULE_TESTS.name],
        cwd=rules_file.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    alerts = {
        rule["alert"] for group in rule_groups()["groups"] for rule in group["rules"] if "alert" in rule
    }
    tested = {
        case["alertname"] for case in yaml.safe_load(RULE_TESTS.read_text())["tests"][0]["alert_rule_test"]
    }
    assert tested == alerts  # every alert has a case


def test_dashboard_is_well_formed_and_reads_only_recorded_series_that_exist():
    board = dashboard()
    panels = board["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    assert len({(panel["gridPos"]["x"], panel["gridPos"]["y"]) for panel in panels}) == len(panels)
    assert {variable["name"] for variable in board["templating"]["list"]} == {"datasource", "model"}
    recorded = recorded_names()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            used = set(re.findall(r"nexus:[a-z0-9_:]+", target["expr"]))
            assert used <= recorded, f"{panel['title']}: no recording rule for {used - recorded}"


def test_kustomization_lists_every_file_of_the_folder():
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"]) | {
        name for generator in kustomization["configMapGenerator"] for name in generator["files"]
    }
    assert listed == {p.name for p in MONITORING.iterdir()} - {"kustomization.yaml"}


# ------------------------------------------------------------------------ a real Prometheus, real traffic


def _values(result: list[dict], label: str) -> dict[str, float]:
    return {sample["metric"].get(label, ""): float(sample["value"][1]) for sample in result}


def test_prometheus_evaluates_the_rules_and_dashboard_on_live_serving(tmp_path, predictor, challenger, jpegs):
    router = CanaryRouter(
        Upstream("v1", predictor.url),
        Upstream("v2", challenger.url),
        percent=50,
        policy=RollbackPolicy(enabled=False),
        seed=0,
    )
    with RouterThread(router) as router_thread:
        targets = [u.removeprefix("http://") for u in (predictor.url, challenger.url, router_thread.url)]
        prometheus = PrometheusServer(tmp_path, targets, rule_groups())
        try:
            prometheus.wait_ready()
            # counters must be scraped once before the traffic, or their rates would be zero
            up = prometheus.wait_for("up", lambda result: len(result) == 3)
            assert _values(up, "instance") == {target: 1.0 for target in targets}, up
            # the router's counters live in this test process: other tests may have counted already
            earlier = prometheus.query("sum(nexus_router_requests_total)")
            baseline = float(earlier[0]["value"][1]) if earlier else 0.0
            url = f"{router_thread.url}/v1/models/{MODEL_NAME}:predict"
            good = [{"instances": [{"b64": b64(jpegs[i % len(jpegs)])}]} for i in range(40)]
            for index, body in enumerate(good):
                response = httpx.post(url, json=body, headers={"X-User-Id": f"user-{index}"}, timeout=30)
                assert response.status_code == 200, response.text
            bad = httpx.post(url, json={"instances": [{"b64": b64(b"not an image")}]}, timeout=30)
            assert bad.status_code == 400
            sent = len(good) + 1

            routed = prometheus.wait_for(
                "sum(nexus_router_requests_total)", lambda r: r and float(r[0]["value"][1]) >= baseline + sent
            )
            assert float(routed[0]["value"][1]) == baseline + sent
            for name in sorted(recorded_names()):
                result = prometheus.wait_for(
                    name, lambda r: r and all(not math.isnan(float(s["value"][1])) for s in r)
                )
                assert result, f"recording rule {name} has no series"

            share = _values(prometheus.query("nexus:router_requests:rate5m"), "version")
            assert set(share) == {"v1", "v2"}
            assert _values(prometheus.query("nexus:router_error_ratio:rate5m"), "version") == {
                "v1": 0.0,
                "v2": 0.0,
            }
            errors = _values(
                prometheus.query(f'nexus:predictor_error_ratio:rate5m{{model="{MODEL_NAME}"}}'), "version"
            )
            assert errors == {"v1": 0.0, "v2": 0.0}
            batch = _values(prometheus.query("nexus:predictor_batch_size:mean_5m"), "version")
            # sequential requests run one at a time, so the mean is about 1; rate() extrapolates the
            # histogram's _sum and _count to the window's edges separately, so not exactly 1
            assert set(batch) == {"v1", "v2"} and all(0.9 <= value <= 8 for value in batch.values()), batch
            stages = {s["metric"]["stage"] for s in prometheus.query("nexus:predictor_stage_seconds:p95_5m")}
            assert {"decode", "preprocess", "inference", "postprocess"} <= stages

            models = httpx.get(
                f"{prometheus.url}/api/v1/label/model/values",
                params={"match[]": "nexus_predictor_requests_total"},
                timeout=10,
            ).json()["data"]
            assert MODEL_NAME in models  # the dashboard's $model variable
            for title, expr in dashboard_queries(MODEL_NAME, "5m").items():
                assert prometheus.query(expr), f"dashboard panel {title!r} shows nothing: {expr}"
            queries = dashboard_queries(MODEL_NAME, "5m")
            shares = _values(prometheus.query(queries["Router: traffic share per version"]), "version")
            assert set(shares) == {"v1", "v2"} and math.isclose(sum(shares.values()), 1.0, rel_tol=1e-9)
            rates = {
                (s["metric"]["version"], s["metric"]["outcome"]): float(s["value"][1])
                for s in prometheus.query(queries["Predictor requests/s by version and outcome"])
            }
            assert rates[("v1", "ok")] > 0 and rates[("v2", "ok")] > 0
            assert rates[("v1", "invalid")] + rates[("v2", "invalid")] > 0  # the refused image
        finally:
            prometheus.stop()
