"""HTTP helpers of the serving tests: request builders for v1/v2 and a router run in a thread."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time

import httpx

MODEL_NAME = "nexus-detector"


LOW_CONF = {"confidence": 0.001}
"""A low threshold: every path compared gives the small fixture models tens of boxes per image."""


def v1(url: str, instances: list, parameters: dict | None = None, **kwargs) -> httpx.Response:
    body: dict = {"instances": instances}
    if parameters is not None:
        body["parameters"] = parameters
    return httpx.post(f"{url}/v1/models/{MODEL_NAME}:predict", json=body, timeout=30, **kwargs)


def v2_json(url: str, inputs: list[dict], parameters: dict | None = None) -> httpx.Response:
    body: dict = {"inputs": inputs}
    if parameters is not None:
        body["parameters"] = parameters
    return httpx.post(f"{url}/v2/models/{MODEL_NAME}/infer", json=body, timeout=30)


def v2_binary(url: str, tensor: dict, raw: bytes, parameters: dict | None = None) -> httpx.Response:
    """The binary tensor data extension: a JSON header, then the raw tensor bytes."""
    tensor = dict(tensor, parameters={"binary_data_size": len(raw)})
    header = json.dumps({"inputs": [tensor], **({"parameters": parameters} if parameters else {})}).encode()
    return httpx.post(
        f"{url}/v2/models/{MODEL_NAME}/infer",
        content=header + raw,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
        timeout=30,
    )


def bytes_tensor(items: list[bytes]) -> bytes:
    """Serialize a BYTES tensor: each element as a 4-byte little-endian length plus its bytes."""
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def v2_detections(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    return [json.loads(document) for document in outputs["detections"]["data"]]


def boxes_of(result: dict) -> list[tuple]:
    return [(d["class_id"], tuple(round(v) for v in d["xyxy"])) for d in result["detections"]]


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text`` (0 when the series is absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.split()[-1])
    return 0.0


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class AppThread:
    """An ASGI app served by uvicorn on a free localhost port in a background thread."""

    def __init__(self, app) -> None:
        import uvicorn

        from nexus.serving.launcher import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, access_log=False, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> AppThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class RouterThread(AppThread):
    """A canary router served by uvicorn in a background thread."""

    def __init__(self, router, **app_options) -> None:
        from nexus.serving.router import create_router_app

        self.router = router
        super().__init__(create_router_app(router, **app_options))
