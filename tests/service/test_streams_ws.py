"""Live streams: a file read as a camera, detections and tracks over a WebSocket, stop, auth."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from media_clips import WEAK_MODEL, write_clip
from service_fixtures import Api, make_settings
from starlette.websockets import WebSocketDisconnect

from nexus.service.app import create_app


@pytest.fixture
def stream_api(tmp_path: Path, detect_onnx: Path) -> Iterator[Api]:
    media = tmp_path / "media"
    media.mkdir()
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'nexus.db'}",
        detector_model=str(detect_onnx),
        local_model_dirs=[detect_onnx.parent],
        stream_file_dirs=[media],
        max_streams=1,
    )
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


@pytest.fixture(scope="module")
def camera(tmp_path_factory) -> Path:
    """4 s at 10 fps, read in real time like a camera."""
    return write_clip(tmp_path_factory.mktemp("camera") / "camera.mp4", frames=40)


def media_file(api: Api, source: Path) -> str:
    target = api.settings.stream_file_dirs[0] / source.name
    if not target.exists():
        target.write_bytes(source.read_bytes())
    return str(target)


def token(api: Api, role: str) -> str:
    return api.headers(role)["Authorization"].removeprefix("Bearer ")


def reader_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("stream:")]


def test_websocket_sends_every_frame_then_the_end(stream_api: Api, camera: Path) -> None:
    api = stream_api
    stream = api.ok(
        "POST", "/streams", "analyst", status=201, json={"source": media_file(api, camera), **WEAK_MODEL}
    )
    assert stream["state"] in ("starting", "running") and stream["tracker"] == "bytetrack"
    messages = []
    with api.client.websocket_connect(f"/streams/{stream['id']}/ws?token={token(api, 'viewer')}") as socket:
        while not messages or messages[-1]["type"] != "end":
            messages.append(socket.receive_json())
    frames, end = messages[:-1], messages[-1]
    # a live stream keeps only the newest frame: a busy machine may skip some, never reorder them
    assert len(frames) >= 20 and all(m["type"] == "frame" for m in frames)
    indexes = [m["frame"] for m in frames]
    assert indexes == sorted(set(indexes)) and indexes[-1] == 39
    assert all(m["timestamp_s"] == pytest.approx(m["frame"] / 10) for m in frames)
    boxes = [d for m in frames for d in m["detections"]]
    assert boxes and set(boxes[0]) >= {
        "x1",
        "y1",
        "x2",
        "y2",
        "confidence",
        "class_id",
        "class_name",
        "track_id",
    }
    assert {d["track_id"] for d in boxes} - {None}, "no box was tracked"
    assert (end["state"], end["connections"]) == ("ended", 1)
    assert end["frames_processed"] + end["frames_dropped"] == 40

    listed = api.ok("GET", "/streams", "viewer")
    assert [(s["id"], s["state"]) for s in listed["items"]] == [(stream["id"], "ended")]
    assert api.ok("DELETE", f"/streams/{stream['id']}")["state"] == "ended"
    assert api.call("GET", f"/streams/{stream['id']}").status_code == 404
    assert reader_threads() == []


def test_delete_stops_a_running_stream_and_closes_its_sockets(stream_api: Api, tmp_path: Path) -> None:
    api = stream_api
    long_camera = media_file(api, write_clip(tmp_path / "long.mp4", frames=300))
    stream = api.ok("POST", "/streams", status=201, json={"source": long_camera, **WEAK_MODEL})
    second = api.call("POST", "/streams", json={"source": long_camera})
    assert second.status_code == 409 and "NEXUS_API_MAX_STREAMS" in second.json()["detail"]
    with api.client.websocket_connect(
        f"/streams/{stream['id']}/ws", headers=api.headers("analyst")
    ) as socket:
        assert socket.receive_json()["type"] == "frame"
        assert api.ok("GET", f"/streams/{stream['id']}")["state"] == "running"
        stopped = api.ok("DELETE", f"/streams/{stream['id']}", "analyst")
        assert stopped["state"] == "stopped" and stopped["frames_processed"] < 300
        message = socket.receive_json()
        while message["type"] == "frame":
            message = socket.receive_json()
        assert (message["type"], message["state"]) == ("end", "stopped")
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
        assert closed.value.code == 1000
    assert reader_threads() == []
    assert api.ok("GET", "/streams")["total"] == 0
    # the slot is free again
    again = api.ok("POST", "/streams", status=201, json={"source": long_camera})
    api.ok("DELETE", f"/streams/{again['id']}")


def test_websocket_needs_credentials_and_a_known_stream(stream_api: Api, camera: Path) -> None:
    api = stream_api
    stream = api.ok("POST", "/streams", status=201, json={"source": media_file(api, camera), "max_fps": 2})
    path = f"/streams/{stream['id']}/ws"
    key = api.ok("POST", "/api-keys", status=201, json={"name": "k", "scopes": ["datasets:read"]})["key"]
    for attempt in (
        {},
        {"params": {"token": "not-a-token"}},
        {"headers": {"Authorization": "Bearer expired.or.forged"}},
        {"headers": {"X-API-Key": key}},  # valid key, but without streams:read
    ):
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            api.client.websocket_connect(
                path + ("?token=" + attempt["params"]["token"] if "params" in attempt else ""),
                headers=attempt.get("headers") or {},
            ) as socket,
        ):
            socket.receive_json()
        assert refused.value.code == 1008, attempt
    with (
        pytest.raises(WebSocketDisconnect) as missing,
        api.client.websocket_connect(f"/streams/999/ws?token={token(api, 'viewer')}") as socket,
    ):
        socket.receive_json()
    assert missing.value.code == 4404
    api.ok("DELETE", f"/streams/{stream['id']}")


def test_stream_requests_are_checked(stream_api: Api, camera: Path, tmp_path: Path) -> None:
    api = stream_api
    source = media_file(api, camera)
    assert api.call("POST", "/streams", "viewer", json={"source": source}).status_code == 403
    assert api.call("GET", "/streams", None).status_code == 401
    for body, words in [
        ({"source": str(camera)}, "not inside the service's stream folders"),
        ({"source": str(Path(source).with_name("nope.mp4"))}, "does not exist"),
        ({"source": "ftp://host/cam"}, "rtsp"),
        ({"source": source, "model": str(tmp_path / "m.onnx")}, "not inside the service's model folders"),
        (
            {"source": source, "tracker": "sort", "tracker_options": {"high_threshold": 0.5}},
            "unknown sort option",
        ),
        ({"source": source, "max_fps": 0}, "greater than 0"),
    ]:
        answer = api.call("POST", "/streams", json=body)
        assert answer.status_code == 422 and words in str(answer.json()["detail"]), (body, answer.text)
    assert api.call("DELETE", "/streams/5", "viewer").status_code == 403
    assert api.call("DELETE", "/streams/5").status_code == 404
    assert api.ok("GET", "/streams")["total"] == 0
