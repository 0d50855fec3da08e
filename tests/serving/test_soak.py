"""A short soak of ``benchmarks/serving_soak.py`` (the 10-minute run is the benchmark): steady mixed
load, good and bad requests, and the predictor's resident memory stays within 10% of its warm-up level."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from serving_soak import request_mix, soak


@pytest.mark.slow
def test_memory_stays_flat_under_steady_mixed_load(detect_onnx, val_images):
    jpegs = [path.read_bytes() for path in val_images[:12]]
    assert all(jpeg[:3] == b"\xff\xd8\xff" for jpeg in jpegs)
    result = soak(detect_onnx, jpegs, seconds=40, warmup_seconds=15, concurrency=6, sample_seconds=5)

    assert not result.unexpected, result.unexpected
    assert {"200", "400", "404"} <= set(result.statuses)  # bad requests were answered, not dropped
    assert result.statuses["200"] > 200
    assert len(result.samples) >= 8
    assert result.growth <= 0.10, f"RSS {result.baseline_mib:.0f} -> {result.peak_mib:.0f} MiB"


def test_request_mix_has_both_protocols_and_bad_requests():
    mix = request_mix([b"\xff\xd8\xff" + bytes(100)] * 4)
    paths = {path for path, *_ in mix}
    assert any(p.startswith("/v1/") for p in paths) and any(p.startswith("/v2/") for p in paths)
    assert sorted({expected for *_, expected in mix}) == [200, 400, 404]
