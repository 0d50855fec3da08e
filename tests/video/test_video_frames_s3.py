"""Sampled frames stored in S3/MinIO (a real SeaweedFS S3 server), through the API and the CLI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from nexus.cli.main import main
from nexus.errors import NexusError
from nexus.video.reader import FrameSampling, VideoFileSource, upload_frames

sys.path.append(str(Path(__file__).resolve().parents[1] / "service"))  # the S3 server helpers


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator:
    from minio import Minio
    from service_servers import weed_s3_server

    with weed_s3_server(tmp_path_factory.mktemp("weed")) as server:
        client = Minio(server.endpoint, server.access_key, server.secret_key, secure=False)
        client.make_bucket("frames")
        yield server, client


@pytest.fixture
def s3_env(s3, monkeypatch):
    server, client = s3
    monkeypatch.setenv("S3_ENDPOINT", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    return client


def test_frames_are_stored_as_images_named_by_index(clip, s3_env):
    keys = upload_frames(VideoFileSource(clip, FrameSampling(every=5)), "s3://frames/clip-a")
    local = list(VideoFileSource(clip, FrameSampling(every=5)))
    assert keys == [f"clip-a/frame_{frame.index:06d}.jpg" for frame in local]
    stored = s3_env.get_object("frames", keys[1]).read()
    image = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == local[1].image.shape
    assert np.abs(image.astype(int) - local[1].image.astype(int)).mean() < 4  # JPEG of the same frame


def test_cli_stores_frames_in_s3(clip, s3_env, capsys):
    assert main(["video", "frames", str(clip), "s3://frames/clip-b", "--every", "10", "--ext", "png"]) == 0
    assert "stored" in capsys.readouterr().out
    names = [item.object_name for item in s3_env.list_objects("frames", prefix="clip-b/", recursive=True)]
    expected = [
        f"clip-b/frame_{frame.index:06d}.png" for frame in VideoFileSource(clip, FrameSampling(every=10))
    ]
    assert sorted(names) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [("s3://no-such-bucket/x", "cannot store frame 0"), ("s3:///x", "not an s3://bucket/prefix URI")],
)
def test_bad_targets_fail_with_the_reason(clip, s3_env, uri, message):
    with pytest.raises(NexusError, match=message):
        upload_frames(VideoFileSource(clip, FrameSampling(every=50)), uri)
