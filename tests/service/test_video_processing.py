"""Video processing jobs: upload → queued → processing → processed/failed, results, restarts, permissions.

Real databases (SQLite, PostgreSQL), real local storage, the session's trained ONNX detector.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from media_clips import WEAK_MODEL, wait_finished, wait_for, write_clip
from service_fixtures import Api, database_url, make_settings

from nexus.service.app import create_app

MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def processing_settings(home: Path, url: str, model: Path, **overrides):
    values = {
        "detector_model": str(model),
        "local_model_dirs": [model.parent],
        "processing_workers": 2,
        "processing_poll_seconds": 0.5,
        "max_upload_bytes": 8 * 1024 * 1024,
        **overrides,
    }
    return make_settings(home, url, **values)


@pytest.fixture
def proc_api(request, backend: str, tmp_path: Path, detect_onnx: Path) -> Iterator[Api]:
    """The app on SQLite and PostgreSQL with a default detector and two job workers."""
    settings = processing_settings(tmp_path, database_url(request, backend, tmp_path), detect_onnx)
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


@pytest.fixture
def sqlite_proc_api(tmp_path: Path, detect_onnx: Path) -> Iterator[Api]:
    settings = processing_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'nexus.db'}", detect_onnx)
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """3 s, 10 fps, 128x96."""
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4").read_bytes()


def upload(api: Api, data: bytes, name: str = "clip.mp4", role: str = "admin", **params) -> dict:
    return api.ok("POST", "/videos", role, status=201, params={"name": name, **params}, content=data)


def detections(api: Api, video_id: int, **params) -> list[dict]:
    page = api.ok("GET", "/detections", params={"video_id": video_id, "limit": 500, **params})
    assert page["total"] == len(page["items"]), "raise the limit"
    return page["items"]


def process(api: Api, video_id: int, role: str = "admin", **options) -> dict:
    return api.ok("POST", f"/videos/{video_id}/process", role, status=202, json={**WEAK_MODEL, **options})


def test_upload_process_query_and_reprocess(proc_api: Api, clip: bytes) -> None:
    api = proc_api
    # With a default model, an upload is queued at once (default options: no box of the test model
    # reaches conf 0.25 on this clip, but the metadata and the progress are filled).
    first = upload(api, clip)
    assert (first["status"], first["extra"]["processing"]["options"]["tracker"]) == ("queued", "bytetrack")
    done = wait_finished(api, first["id"])
    assert done["status"] == "processed", done["message"]
    assert (done["fps"], done["frame_count"], done["width"], done["height"]) == (10.0, 30, 128, 96)
    assert done["duration_s"] == pytest.approx(3.0)
    job = done["extra"]["processing"]
    assert job["progress"]["percent"] == 100.0 and job["progress"]["frames_total"] == 30
    assert job["result"]["frames_processed"] == 30

    a = upload(api, clip, "a.mp4", process="false")
    b = upload(api, clip, "b.mp4", process="false")
    assert a["status"] == b["status"] == "uploaded"
    assert process(api, a["id"])["status"] == "queued"
    process(api, b["id"])
    a_done, b_done = wait_finished(api, a["id"]), wait_finished(api, b["id"])
    assert a_done["status"] == b_done["status"] == "processed", (a_done["message"], b_done["message"])
    rows = detections(api, a["id"])
    tracks = api.ok("GET", f"/videos/{a['id']}/tracks")
    result = a_done["extra"]["processing"]["result"]
    assert a_done["message"] == f"processed 30 frames: {len(rows)} detections, {tracks['total']} tracks"
    assert len(rows) == result["detections"] > 0 and tracks["total"] == result["tracks"] > 0
    assert {r["frame"] for r in rows} <= set(range(30))
    assert all(r["timestamp_s"] == pytest.approx(r["frame"] / 10) for r in rows)

    window = detections(api, a["id"], t_from=1.0, t_to=2.0)
    assert window and {r["frame"] for r in window} <= set(range(10, 21))
    assert len(window) == sum(1.0 <= r["timestamp_s"] <= 2.0 for r in rows)
    some_class = rows[0]["class_name"]
    assert len(detections(api, a["id"], class_name=some_class)) == sum(
        r["class_name"] == some_class for r in rows
    )
    track = tracks["items"][0]
    boxes = detections(api, a["id"], track_id=track["track_id"])
    assert len(boxes) == track["detections"] and {r["track_id"] for r in boxes} == {track["track_id"]}
    assert api.ok("GET", f"/videos/{a['id']}/tracks/{track['track_id']}")["last_frame"] == max(
        r["frame"] for r in boxes
    )

    # Processing again replaces only this video's rows: every 3rd frame now, new rows, b untouched.
    b_rows = detections(api, b["id"])
    process(api, a["id"], every=3)
    again = wait_finished(api, a["id"])
    assert again["status"] == "processed" and again["extra"]["processing"]["result"]["frames_processed"] == 10
    new_rows = detections(api, a["id"])
    assert new_rows and {r["frame"] % 3 for r in new_rows} == {0}
    # (SQLite may reuse the deleted rows' ids, so compare contents, not ids)
    assert len(new_rows) == again["extra"]["processing"]["result"]["detections"] < len(rows)
    assert detections(api, b["id"]) == b_rows


def test_bad_videos_fail_with_a_reason_and_nothing_stored_is_lost(sqlite_proc_api: Api, clip: bytes) -> None:
    api = sqlite_proc_api
    kept = upload(api, clip, "kept.mp4", process="false")
    process(api, kept["id"])
    assert wait_finished(api, kept["id"])["status"] == "processed"
    kept_rows = detections(api, kept["id"])
    assert kept_rows

    garbage = upload(api, MP4_HEAD + os.urandom(20_000), "garbage.mp4")  # MP4 magic, no video inside
    truncated = upload(api, clip[: len(clip) // 2], "cut.mp4")
    good = upload(api, clip, "good.mp4", process="false")
    process(api, good["id"])
    assert garbage["status"] == truncated["status"] == "queued"
    # the stored object of `kept` disappears: processing it again must fail and keep its results
    (api.settings.storage_dir / api.ok("GET", f"/videos/{kept['id']}")["object_key"]).unlink()
    process(api, kept["id"], every=2)

    outcomes = {v: wait_finished(api, v) for v in (garbage["id"], truncated["id"], good["id"], kept["id"])}
    assert outcomes[good["id"]]["status"] == "processed"
    assert detections(api, good["id"])
    failed = {v: (o["status"], o["message"]) for v, o in outcomes.items() if v != good["id"]}
    assert failed[garbage["id"]][0] == "failed"
    assert failed[garbage["id"]][1].startswith("not a decodable video (")
    assert failed[truncated["id"]][0] == "failed"
    assert failed[truncated["id"]][1].startswith("truncated video: the header promises 30 frames but only ")
    assert failed[kept["id"]] == ("failed", f"content of video {kept['id']} is missing from storage")
    assert detections(api, kept["id"]) == kept_rows
    assert outcomes[truncated["id"]]["frame_count"] < 30  # the metadata measured before it failed
    assert detections(api, garbage["id"]) == [] and detections(api, truncated["id"]) == []
    assert api.ok("GET", "/videos", params={"status": "failed"})["total"] == 3
    assert not [p for p in (api.settings.home / "work").iterdir()]  # temp copies removed


@contextlib.contextmanager
def serve(home: Path, model: Path, workers: int) -> Iterator[Api]:
    """One run of the service on the SQLite file under ``home`` (the same database every time)."""
    url = f"sqlite+aiosqlite:///{home / 'nexus.db'}"
    settings = processing_settings(home, url, model, processing_workers=workers)
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


def test_restart_resumes_queued_and_interrupted_jobs(tmp_path: Path, detect_onnx: Path, clip: bytes) -> None:
    long_clip = write_clip(tmp_path / "long.mp4", frames=150).read_bytes()
    # 1) no workers: jobs stay queued; one video looks interrupted by a crash, one by three crashes
    with serve(tmp_path, detect_onnx, workers=0) as api:
        queued = upload(api, clip, "queued.mp4")
        assert api.call("POST", f"/videos/{queued['id']}/process", json={}).status_code == 409
        crashed = upload(api, clip, "crashed.mp4", process="false")
        api.ok("PATCH", f"/videos/{crashed['id']}", json={"status": "processing"})
        doomed = upload(api, clip, "doomed.mp4", process="false")
        crashes = {"status": "processing", "extra": {"processing": {"restarts": 3}}}
        api.ok("PATCH", f"/videos/{doomed['id']}", json=crashes)
        conflict = api.call("POST", f"/videos/{crashed['id']}/process", json={})
        assert conflict.status_code == 409
        assert conflict.json()["detail"] == f"video {crashed['id']} is already processing"
    # 2) a worker picks them up; a long job is still running when the service shuts down
    with serve(tmp_path, detect_onnx, workers=1) as api:
        assert wait_finished(api, queued["id"])["status"] == "processed"
        resumed = wait_finished(api, crashed["id"])
        assert resumed["status"] == "processed" and resumed["extra"]["processing"]["restarts"] == 1
        gave_up = api.ok("GET", f"/videos/{doomed['id']}")
        assert gave_up["status"] == "failed"
        assert gave_up["message"].startswith("interrupted by 3 service restarts; not retried")
        long = upload(api, long_clip, "long.mp4", process="false")
        process(api, long["id"], batch_size=1)
        wait_for(api, f"/videos/{long['id']}", lambda v: v["status"] == "processing", 30)
    # 3) the shutdown put it back in the queue; the next start with a worker finishes it
    with serve(tmp_path, detect_onnx, workers=0) as api:
        interrupted = api.ok("GET", f"/videos/{long['id']}")
        assert interrupted["status"] == "queued"
        assert interrupted["message"] == "interrupted by a service shutdown; queued again"
    with serve(tmp_path, detect_onnx, workers=1) as api:
        finished = wait_finished(api, long["id"])
        assert finished["status"] == "processed" and finished["frame_count"] == 150


def test_process_errors_and_permissions(sqlite_proc_api: Api, clip: bytes, tmp_path: Path) -> None:
    api = sqlite_proc_api
    video = upload(api, clip, process="false")
    url = f"/videos/{video['id']}/process"
    assert api.call("POST", "/videos/999/process", json={}).status_code == 404
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes(b"x")
    inside_missing = Path(api.settings.local_model_dirs[0]) / "missing.onnx"
    for body, words in [
        ({"every": 2, "fps": 5}, "choose one of every or fps"),
        ({"tracker": "deepsort"}, "bytetrack"),
        ({"tracker_options": {"nope": 1}}, "unknown bytetrack option"),
        ({"tracker_options": {"low_threshold": 0.9}}, "low_threshold"),
        ({"conf": 2}, "less than or equal to 1"),
        ({"model": str(outside)}, "not inside the service's model folders"),
        ({"model": str(inside_missing)}, "no model file"),
        ({"model": "ftp://host/model.onnx"}, "unsupported model URI scheme"),
    ]:
        answer = api.call("POST", url, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert words in str(answer.json()["detail"]) and answer.json()["request_id"], (body, answer.text)
    assert api.ok("GET", f"/videos/{video['id']}")["status"] == "uploaded"

    assert api.call("POST", url, "viewer", json={}).status_code == 403
    assert api.call("POST", url, None, json={}).status_code == 401
    assert process(api, video["id"], role="analyst")["status"] == "queued"
    assert wait_finished(api, video["id"])["status"] == "processed"
    assert process(api, video["id"], role="admin")["status"] == "queued"
    assert wait_finished(api, video["id"])["status"] == "processed"
    # viewers still read the results
    assert api.ok("GET", "/detections", "viewer", params={"video_id": video["id"]})["total"] > 0
    audit = api.ok("GET", "/audit", params={"action": "process", "entity": "video"})
    assert [e["actor"] for e in audit["items"]] == ["admin", "analyst"]


def test_without_a_default_model_uploads_are_not_processed(sqlite_api: Api, clip: bytes) -> None:
    api = sqlite_api
    assert upload(api, clip)["status"] == "uploaded"
    refused = api.call("POST", "/videos", params={"name": "x.mp4", "process": "true"}, content=clip)
    assert refused.status_code == 422 and "NEXUS_API_DETECTOR_MODEL" in refused.json()["detail"]
    assert api.ok("GET", "/videos")["total"] == 1
    answer = api.call("POST", "/videos/1/process", json={})
    assert answer.status_code == 422 and "no model" in answer.json()["detail"]


def test_default_model_from_the_registry(tmp_path: Path, detect_onnx: Path, clip: bytes, monkeypatch) -> None:
    from nexus.registry import CHAMPION, Lineage, ModelRegistry
    from nexus.settings import NexusSettings

    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "nexus-home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.onnx").write_bytes(detect_onnx.read_bytes())
    ModelRegistry(NexusSettings.from_env(), name="detector").register(export, Lineage(), alias=CHAMPION)
    url = f"sqlite+aiosqlite:///{tmp_path / 'nexus.db'}"
    settings = processing_settings(tmp_path, url, detect_onnx, detector_model="models:/detector@champion")
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        video = upload(api, clip, process="false")
        assert process(api, video["id"])["extra"]["processing"]["model"] == "models:/detector@champion"
        done = wait_finished(api, video["id"])
        assert done["status"] == "processed", done["message"]
        assert detections(api, video["id"])
        # a registry URI per request is accepted too; a missing alias fails the job with the reason
        process(api, video["id"], model="models:/detector@nope")
        failed = wait_finished(api, video["id"])
        assert failed["status"] == "failed"
        assert failed["message"].startswith("model models:/detector@nope cannot be loaded: cannot fetch")
        assert detections(api, video["id"])  # the earlier results stay


def test_videos_in_s3_are_processed(tmp_path: Path, detect_onnx: Path, clip: bytes, s3_server) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nexus.db'}"
    settings = processing_settings(
        tmp_path,
        url,
        detect_onnx,
        storage_backend="s3",
        s3_endpoint=s3_server.endpoint,
        s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key,
        s3_bucket=f"nexus-{os.urandom(4).hex()}",
    )
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        video = upload(api, clip, process="false")
        process(api, video["id"])
        assert wait_finished(api, video["id"])["status"] == "processed"
        rows = detections(api, video["id"])
        assert rows
        store = client.app.state.store
        store.client.remove_object(store.bucket, video["object_key"])
        process(api, video["id"])
        failed = wait_finished(api, video["id"])
        assert (failed["status"], failed["message"]) == (
            "failed",
            f"content of video {video['id']} is missing from storage",
        )
        assert detections(api, video["id"]) == rows
