"""Video uploads (local folder and S3), detections and tracks."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_fixtures import Api, make_settings

from nexus.service.app import create_app

MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def fake_mp4(size: int) -> bytes:
    """Bytes whose magic says MP4 (the service checks the type, not the decodability)."""
    return MP4_HEAD + os.urandom(size - len(MP4_HEAD))


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def stored_objects(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture(params=["local", "s3"])
def media_api(request, tmp_path: Path) -> Iterator[Api]:
    """SQLite app whose uploads go to a local folder or to the SeaweedFS S3 server."""
    overrides: dict = {}
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_server")
        bucket = f"nexus-{os.urandom(4).hex()}"
        overrides = {
            "storage_backend": "s3",
            "s3_endpoint": s3.endpoint,
            "s3_access_key": s3.access_key,
            "s3_secret_key": s3.secret_key,
            "s3_bucket": bucket,
        }
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'nexus.db'}", **overrides)
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        api.backend = request.param
        yield api


def objects(api: Api) -> list[str]:
    store = api.client.app.state.store
    if api.backend == "s3":
        return [o.object_name for o in store.client.list_objects(store.bucket, recursive=True)]
    return [str(p) for p in stored_objects(api.settings.storage_dir)]


def test_upload_streams_stores_and_downloads(media_api) -> None:
    data = fake_mp4(300_000)
    video = media_api.ok(
        "POST",
        "/videos",
        status=201,
        params={"name": "street.mp4"},
        content=chunks(data),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert video["content_type"] == "video/mp4" and video["size_bytes"] == len(data)
    assert video["sha256"] == hashlib.sha256(data).hexdigest() and video["status"] == "uploaded"
    assert len(objects(media_api)) == 1
    download = media_api.call(
        "GET", f"/videos/{video['id']}/content", headers={"Accept-Encoding": "identity"}
    )
    assert download.status_code == 200 and download.content == data
    assert download.headers["content-type"] == "video/mp4"
    meta = media_api.ok(
        "PATCH", f"/videos/{video['id']}", json={"status": "processed", "fps": 30, "frame_count": 90}
    )
    assert (meta["status"], meta["fps"]) == ("processed", 30.0)
    assert media_api.ok("GET", "/videos", params={"status": "processed"})["total"] == 1
    assert not list((media_api.settings.home / "spool").glob("*"))


def test_rejected_uploads_leave_nothing_behind(media_api) -> None:
    too_big = fake_mp4(media_api.settings.max_upload_bytes + 1)
    response = media_api.call("POST", "/videos", params={"name": "big.mp4"}, content=chunks(too_big))
    assert response.status_code == 413 and response.json()["request_id"]
    png_named_mp4 = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)
    response = media_api.call("POST", "/videos", params={"name": "fake.mp4"}, content=png_named_mp4)
    assert response.status_code == 415 and "image/png" in response.json()["detail"]
    assert media_api.call("POST", "/videos", params={"name": "e.mp4"}, content=b"").status_code == 400
    assert media_api.ok("GET", "/videos")["total"] == 0
    assert objects(media_api) == []
    assert not list((media_api.settings.home / "spool").glob("*"))


def test_failed_database_write_removes_the_object(media_api, monkeypatch) -> None:
    import nexus.service.routers.videos as videos

    def broken_record(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(videos, "record", broken_record)
    media_api.client._transport.raise_server_exceptions = False  # see the 500 answer itself
    response = media_api.call("POST", "/videos", params={"name": "a.mp4"}, content=fake_mp4(10_000))
    assert response.status_code == 500
    assert response.json() == {
        "detail": "internal server error",
        "request_id": response.headers["x-request-id"],
    }
    assert objects(media_api) == []
    assert media_api.ok("GET", "/videos")["total"] == 0


def test_detections_bulk_insert_and_queries(api) -> None:
    data = fake_mp4(2000)
    video = api.ok("POST", "/videos", status=201, params={"name": "v.mp4"}, content=data)
    vid = video["id"]
    rows = []
    for frame in range(100):
        for track, cls in ((1, "car"), (2, "person")):
            if track == 2 and frame >= 50:
                continue
            rows.append(
                {
                    "frame": frame,
                    "timestamp_s": frame / 25,
                    "class_id": track - 1,
                    "class_name": cls,
                    "confidence": 0.5 + track * 0.2,
                    "x1": frame,
                    "y1": 10,
                    "x2": frame + 20,
                    "y2": 40,
                    "track_id": track,
                }
            )
    rows.append(
        {
            "frame": 3,
            "timestamp_s": 0.12,
            "class_id": 0,
            "class_name": "car",
            "confidence": 0.3,
            "x1": 0,
            "y1": 0,
            "x2": 5,
            "y2": 5,
        }
    )
    assert api.ok("POST", f"/videos/{vid}/detections", status=201, json={"detections": rows}) == {
        "inserted": 151
    }
    bad = dict(rows[0], x2=-1)
    assert api.call("POST", f"/videos/{vid}/detections", json={"detections": [bad]}).status_code == 422
    assert api.call("POST", "/videos/999/detections", json={"detections": rows[:1]}).status_code == 404

    window = api.ok("GET", "/detections", params={"video_id": vid, "t_from": 1.0, "t_to": 2.0, "limit": 500})
    assert window["total"] == 26 + 25 and all(1.0 <= d["timestamp_s"] <= 2.0 for d in window["items"])
    people = api.ok("GET", "/detections", params={"video_id": vid, "class_name": "person"})
    assert people["total"] == 50
    track = api.ok(
        "GET", "/detections", params={"video_id": vid, "track_id": 1, "sort": "-frame", "limit": 3}
    )
    assert [d["frame"] for d in track["items"]] == [99, 98, 97]
    assert api.ok("GET", "/detections", params={"min_confidence": 0.85})["total"] == 50
    assert api.ok("GET", "/detections", params={"frame_from": 3, "frame_to": 3})["total"] == 3

    tracks = api.ok("GET", f"/videos/{vid}/tracks")
    assert [(t["track_id"], t["class_name"], t["detections"]) for t in tracks["items"]] == [
        (1, "car", 100),
        (2, "person", 50),
    ]
    one = api.ok("GET", f"/videos/{vid}/tracks/2")
    assert (one["first_frame"], one["last_frame"], one["end_s"]) == (0, 49, 49 / 25)
    assert api.call("GET", f"/videos/{vid}/tracks/7").status_code == 404
    assert api.ok("GET", f"/videos/{vid}/tracks", params={"class_name": "car"})["total"] == 1


def test_artifacts_images_and_files(media_api) -> None:
    run = media_api.ok("POST", "/runs", status=201, json={"pipeline": "train"})
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
    image = media_api.ok(
        "POST",
        "/artifacts",
        status=201,
        params={"name": "pr_curve.png", "kind": "image", "run_id": run["id"]},
        content=png,
    )
    assert (image["kind"], image["content_type"], image["run_id"]) == ("image", "image/png", run["id"])
    archive = b"PK\x03\x04" + os.urandom(5000)
    weights = media_api.ok("POST", "/artifacts", status=201, params={"name": "best.pt"}, content=archive)
    assert weights["content_type"] == "application/zip" and weights["kind"] == "artifact"
    # a zip is not an image, whatever its name says
    wrong = media_api.call("POST", "/artifacts", params={"name": "x.png", "kind": "image"}, content=archive)
    assert wrong.status_code == 415
    assert (
        media_api.call("POST", "/artifacts", params={"name": "x", "run_id": 999}, content=png).status_code
        == 404
    )
    listed = media_api.ok("GET", "/artifacts", params={"run_id": run["id"]})
    assert [a["name"] for a in listed["items"]] == ["pr_curve.png"]
    assert (
        media_api.ok("GET", "/artifacts", params={"sha256": hashlib.sha256(archive).hexdigest()})["total"]
        == 1
    )
    content = media_api.call(
        "GET", f"/artifacts/{weights['id']}/content", headers={"Accept-Encoding": "identity"}
    )
    assert content.status_code == 200 and content.content == archive
    assert len(objects(media_api)) == 2


def test_json_bodies_are_capped_and_uploads_keep_their_own_limit(tmp_path: Path) -> None:
    """``max_request_bytes`` caps every body but uploads, which stream up to ``max_upload_bytes``."""
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'nexus.db'}",
        max_request_bytes=4096,
        max_upload_bytes=65536,
    )
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        api.ok("POST", "/datasets", status=201, json={"name": "small", "description": "x" * 1000})
        huge = api.call("POST", "/datasets", json={"name": "huge", "description": "x" * 8000})
        assert huge.status_code == 413, huge.text
        assert huge.json()["request_id"] == huge.headers["x-request-id"]
        assert "exceeds the limit of 4096 bytes (NEXUS_API_MAX_REQUEST_BYTES)" in huge.json()["detail"]
        streamed = api.call(
            "POST", "/datasets", content=chunks(b'{"name": "s", "x": "' + b"y" * 9000 + b'"}', 1024)
        )
        assert streamed.status_code == 413  # no Content-Length: counted while it streams
        assert (
            "exceeds the limit of 4096 bytes" in streamed.json()["detail"] and streamed.json()["request_id"]
        )
        assert api.ok("GET", "/datasets")["total"] == 1
        video = api.ok("POST", "/videos", status=201, params={"name": "v.mp4"}, content=fake_mp4(20_000))
        assert video["size_bytes"] == 20_000  # five times the JSON cap
        too_big = api.call("POST", "/videos", params={"name": "w.mp4"}, content=chunks(fake_mp4(70_000)))
        assert too_big.status_code == 413 and "65536" in too_big.json()["detail"]
