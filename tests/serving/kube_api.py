"""A stand-in for the Kubernetes API server (KServe custom objects), for the cluster-facing code paths:
what is asked, in which order, and how refusals and missing objects are reported. No cluster runs here."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest


class KubeApiStandIn(http.server.BaseHTTPRequestHandler):
    """Answers like a Kubernetes API server: GET the ``objects`` it holds (else 404), PATCH 200 for the
    ``existing`` paths (else 404), POST 201 (404 when ``serves`` is False: KServe's CRDs missing), or
    ``refuse`` for every request; records what was asked."""

    calls: ClassVar[list[tuple[str, str, dict, str | None]]] = []  # method, path, body, content type
    refuse: ClassVar[int | None] = None
    existing: ClassVar[set[str]] = set()  # paths that PATCH finds
    objects: ClassVar[dict[str, dict]] = {}  # path -> what GET answers
    serves: ClassVar[bool] = True  # False: KServe's CRDs are not installed (POST 404)
    url: ClassVar[str] = ""

    def _answer(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        stand_in = type(self)
        stand_in.calls.append((self.command, self.path, body, self.headers.get("Content-Type")))
        if self.command == "GET":
            status = 200 if self.path in stand_in.objects else 404
            body = stand_in.objects.get(self.path, body)
        elif self.command == "PATCH":
            status = 200 if self.path in stand_in.existing else 404
        else:
            status = 201 if stand_in.serves else 404
        status = self.refuse or status
        payload = json.dumps(body if status < 300 else {"kind": "Status", "code": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PATCH = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def kube_api_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[KubeApiStandIn]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), KubeApiStandIn)
    KubeApiStandIn.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": KubeApiStandIn.url}}],
        "users": [{"name": "test", "user": {"token": "t"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "vision"}}],
    }  # fmt: skip
    (tmp_path / "kubeconfig").write_text(json.dumps(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    KubeApiStandIn.calls, KubeApiStandIn.refuse = [], None
    KubeApiStandIn.existing, KubeApiStandIn.serves, KubeApiStandIn.objects = set(), True, {}
    try:
        yield KubeApiStandIn
    finally:
        server.shutdown()
