"""Canary router under bad input and failing predictors: admin bodies, paths, headers, upstream faults.

The predictors here are stand-ins (a real HTTP server on a free port) that answer as a failing predictor
would: slow, non-JSON, a broken connection; or echo what reached them.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from serving_client import MODEL_NAME, RouterThread, b64

from nexus.cli.main import main as nexus_main
from nexus.serving.launcher import free_port
from nexus.serving.router import CanaryRouter, RollbackPolicy, Upstream


class PredictorStandIn(http.server.BaseHTTPRequestHandler):
    """Answers every request as its server's ``mode`` says; records what reached it."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server = self.server
        server.seen.append((self.command, self.path, self.headers.items(), body))  # type: ignore[attr-defined]
        mode = server.mode  # type: ignore[attr-defined]
        if mode == "slow":
            time.sleep(3)
        if mode == "broken":  # promises 100 bytes, sends 7, hangs up
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            self.close_connection = True
            return
        status, content_type, payload, extra = {
            "html": (200, "text/html", b"<html>not json</html>", []),
            "array": (200, "application/json", b"[1, 2]", []),
            "crash": (500, "text/html", b"<h1>Internal Server Error</h1>", []),
            "cookies": (200, "application/json", b"{}", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]),
            "redirect": (307, "text/plain", b"", [("Location", f"{server.url}/v2/models/m")]),  # type: ignore[attr-defined]
        }.get(mode, (200, "application/json", b'{"ok": true}', []))
        self.send_response(status)
        for key, value in [("Content-Type", content_type), ("Content-Length", str(len(payload))), *extra]:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@contextlib.contextmanager
def stand_in(mode: str = "ok") -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), PredictorStandIn)
    server.daemon_threads = True
    server.handle_error = lambda *args: None  # type: ignore[method-assign]  # a client the router dropped
    server.mode, server.seen = mode, []  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def routed(mode: str = "ok", percent: float = 100, **app_options) -> Iterator[tuple[RouterThread, list]]:
    """A router with a well champion (v1) and a challenger (v2) in ``mode``; yields it and what v2 saw."""
    with stand_in() as champion, stand_in(mode) as challenger:
        router = CanaryRouter(
            Upstream("v1", champion.url),  # type: ignore[attr-defined]
            Upstream("v2", challenger.url),  # type: ignore[attr-defined]
            percent=percent,
            policy=RollbackPolicy(enabled=False),
        )
        with RouterThread(router, **app_options) as running:
            yield running, challenger.seen  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "word"),
    [
        (b'{"percent": "50"}', "must be a number, got '50'"),
        (b'{"percent": true}', "must be a number, got True"),
        (b'{"percent": null}', "must be a number, got None"),
        (b'{"percent": [10]}', "must be a number"),
        (b'{"pct": 10}', "no field 'percent'"),
        (b"[10]", "no field 'percent'"),
        (b'"10"', "no field 'percent'"),
        (b'{"percent": NaN}', "got nan"),
        (b'{"percent": 1e999}', "got inf"),
        (b'{"percent": 1' + b"0" * 400 + b"}", "within [0, 100]"),  # an int no float holds
        (b'{"percent": -1}', "got -1"),
        (b'{"percent": 100.5}', "got 100.5"),
        (b"percent=10", "Expecting value"),
        (b"", "Expecting value"),
        (b'{"percent": \xff}', "decode"),
    ],
)
def test_traffic_refuses_what_is_not_a_percent(body, word):
    with routed(percent=10) as (running, _):
        answer = httpx.put(f"{running.url}/admin/traffic", content=body)
        assert answer.status_code == 400 and word in answer.json()["error"], answer.text
        assert running.router.percent == 10


def test_traffic_takes_whole_and_fractional_numbers():
    with routed(percent=10) as (running, _):
        for sent, kept in ((-0.0, 0.0), (12.5, 12.5), (100, 100.0)):
            answer = httpx.put(f"{running.url}/admin/traffic", json={"percent": sent})
            assert answer.status_code == 200 and answer.json()["canary_percent"] == kept


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/admin/traffic", 405),
        ("GET", "/admin/promote", 405),
        ("DELETE", "/admin/rollback", 405),
        ("POST", "/metrics", 405),
        ("GET", "/admin/anything", 404),
        ("PATCH", "/admin/traffic", 405),
    ],
)
def test_router_endpoints_are_never_proxied(method, path, status):
    with routed() as (running, seen):
        answer = httpx.request(method, f"{running.url}{path}", json={"percent": 50})
        assert answer.status_code == status and "error" in answer.json(), answer.text
        assert seen == [] and running.router.stats == {}  # nothing reached a predictor, nothing counted


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        ("/v1/models/m:predict%3Fq=1?x=%00&y=%FF", "/v1/models/m:predict%3Fq=1?x=%00&y=%FF"),
        ("/v2/models/m%23frag/infer", "/v2/models/m%23frag/infer"),
        ("/v2/models/m%00/infer", "/v2/models/m%00/infer"),
        ("/v2/models/n%C3%A9/infer", "/v2/models/n%C3%A9/infer"),
        ("/v2/models/m/versions/v%32/infer?a=b", "/v2/models/m/infer?a=b"),
    ],
)
def test_paths_reach_the_predictor_as_sent(sent, received):
    with routed() as (running, seen):
        answer = httpx.post(f"{running.url}{sent}", content=b"{}")
        assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "v2", answer.text
        assert [path for _, path, _, _ in seen] == [received]


def test_an_escaped_slash_is_no_version():
    with routed() as (running, seen):
        answer = httpx.post(f"{running.url}/v2/models/m/versions/v2%2F..%2F/infer", content=b"{}")
        assert answer.status_code == 404 and "'v2/../'" in answer.json()["error"] and seen == []


def test_headers_pass_as_sent_without_the_hop_by_hop_ones():
    headers = [
        (b"X-User-Id", "ünï€".encode()),
        (b"X-Trace", b"a"),
        (b"X-Trace", b"b"),
        (b"Connection", b"keep-alive, X-Hop"),
        (b"X-Hop", b"1"),
        (b"TE", b"trailers"),
        (b"Proxy-Authorization", b"Basic eDp5"),
    ]
    with routed() as (running, seen):
        for _ in range(2):
            answer = httpx.post(f"{running.url}/v1/models/m:predict", content=b"{}", headers=headers)
            assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "v2", answer.text
        received = [(key.lower(), value) for key, value in seen[0][2]]
        assert ("x-user-id", "ünï€".encode().decode("latin-1")) in received  # the same bytes
        assert [value for key, value in received if key == "x-trace"] == ["a", "b"]
        assert not {"x-hop", "te", "proxy-authorization"} & {key for key, _ in received}
    router = CanaryRouter(Upstream("a", "http://x:1"), Upstream("b", "http://x:2"), percent=50)
    assert len({router.choose("ünï€") for _ in range(5)}) == 1  # sticky like any other id


@pytest.mark.parametrize(
    ("mode", "status", "body", "error"),
    [
        ("html", 200, b"<html>not json</html>", False),
        ("array", 200, b"[1, 2]", False),
        ("crash", 500, b"<h1>Internal Server Error</h1>", True),
        ("broken", 502, b'"version v2 did not answer: RemoteProtocolError"', True),
        ("slow", 504, b'"version v2 did not answer within 0.5 s"', True),
    ],
)
def test_a_failing_predictor_answers_labelled_and_counted(mode, status, body, error):
    with routed(mode, timeout_s=0.5) as (running, _):
        answer = httpx.post(f"{running.url}/v1/models/m:predict", content=b"{}", timeout=30)
        assert answer.status_code == status and body in answer.content, answer.text
        assert answer.headers["X-Model-Version"] == "v2"
        stats = httpx.get(f"{running.url}/admin/status").json()["stats"]
        assert (stats["v2"]["requests"], stats["v2"]["errors"]) == (1, int(error))


def test_response_headers_keep_repeats_one_date_and_the_routers_address():
    with routed("cookies") as (running, _):
        answer = httpx.post(f"{running.url}/v1/models/m:predict", content=b"{}")
        assert answer.headers.get_list("set-cookie") == ["a=1", "b=2"]
        assert len(answer.headers.get_list("date")) == 1 and len(answer.headers.get_list("server")) == 1
    with routed("redirect") as (running, _):
        answer = httpx.post(f"{running.url}/v2/models/m/", content=b"{}")
        assert answer.status_code == 307 and answer.headers["location"] == f"{running.url}/v2/models/m"


def test_a_token_beyond_ascii_is_compared_as_utf8(monkeypatch, capsys):
    with routed(percent=10, admin_token="sécret") as (running, _):
        for sent, status in (("sécret".encode(), 200), ("sécret".encode("latin-1"), 401), (b"secret", 401)):
            answer = httpx.put(
                f"{running.url}/admin/traffic",
                json={"percent": 20},
                headers={"Authorization": b"Bearer " + sent},
            )
            assert answer.status_code == status, answer.text
        monkeypatch.setenv("NEXUS_ROUTER_ADMIN_TOKEN", "sécret")
        assert nexus_main(["deploy", "traffic", "30", "--router", running.url]) == 0
        assert running.router.percent == 30


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deploy", "traffic", "nan"], "traffic percent must be within [0, 100], got nan"),
        (["deploy", "traffic", "inf"], "got inf"),
        (["deploy", "traffic", "--", "-5"], "got -5.0"),
        (["deploy", "traffic", "nan", "--kserve", "detector"], "got nan"),
        (["deploy", "status", "--router", ":::"], "--router ':::' is not an http:// URL"),
        (["deploy", "promote", "--router", "http://[::1"], "is not an http:// URL"),
        (["deploy", "promote"], "'nexus deploy show' prints a local deployment's url"),
    ],
)
def test_deploy_cli_names_the_problem(argv, message, capsys, monkeypatch):
    monkeypatch.setenv("NEXUS_ROUTER_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert nexus_main(argv) == 2
    assert message in capsys.readouterr().err


def test_deploy_cli_says_when_the_router_is_not_a_router(capsys):
    with stand_in("html") as server:
        assert nexus_main(["deploy", "status", "--router", server.url]) == 2  # type: ignore[attr-defined]
    assert "answered 200 without JSON: is it a canary router?" in capsys.readouterr().err


def test_counters_add_up_under_load_with_promote_and_rollback(predictor, challenger, jpegs):
    """Concurrent requests while the rollout changes: every answer is counted once, for its version."""
    router = CanaryRouter(
        Upstream("v1", predictor.url), Upstream("v2", challenger.url), 50, RollbackPolicy(enabled=False)
    )
    body = {"instances": [{"b64": b64(jpegs[0])}]}

    async def load(url: str) -> Counter:
        answered: Counter = Counter()
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(i: int) -> None:
                response = await client.post(
                    f"{url}/v1/models/{MODEL_NAME}:predict", json=body, headers={"X-User-Id": f"u{i}"}
                )
                assert response.status_code == 200, response.text
                answered[response.headers["X-Model-Version"]] += 1

            async def steer() -> None:
                for path in ("/admin/promote", "/admin/rollback", "/admin/promote"):
                    await asyncio.sleep(0.05)
                    assert (await client.post(f"{url}{path}")).status_code == 200

            semaphore = asyncio.Semaphore(8)

            async def bounded(i: int) -> None:
                async with semaphore:
                    await one(i)

            await asyncio.gather(steer(), *(bounded(i) for i in range(60)))
        return answered

    with RouterThread(router) as running:
        answered = asyncio.run(load(running.url))
        status = httpx.get(f"{running.url}/admin/status").json()
    counted = {version: stats["requests"] for version, stats in status["stats"].items()}
    assert counted == dict(answered) and sum(counted.values()) == 60
    assert all(stats["errors"] == 0 for stats in status["stats"].values())
    assert status["champion"]["version"] == "v2" and [e["action"] for e in status["events"]] == ["promote"]
