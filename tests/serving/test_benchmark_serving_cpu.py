"""``benchmarks/serving_cpu.py`` end to end on a tiny model and short load points: it starts every
server it compares, and prints the table, the ratios, the batching comparison and the overheads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "serving_cpu.py"


@pytest.mark.slow
def test_serving_cpu_benchmark_prints_its_ratios(detect_weights, detect_onnx, val_images):
    images = val_images[0].parent  # the sample dataset's validation JPEGs
    command = [
        sys.executable, str(BENCHMARK), "--weights", str(detect_weights), "--onnx", str(detect_onnx),
        "--images", str(images), "--duration", "0.6", "--concurrency", "1", "4", "--gain-rounds", "2",
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    for server in ("ultralytics", "plain-kserve", "nexus"):
        for concurrency in (1, 4):
            row = re.search(rf"(?m)^{server}\s+{concurrency}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out)
            assert row is not None, f"no {server} row at concurrency {concurrency}:\n{out}"
            assert float(row.group(1)) > 0
    assert re.search(r"concurrency\s+4: vs ultralytics x[\d.]+\s+vs plain kserve x[\d.]+", out)
    rounds = re.search(r"batching: x([\d.]+) the throughput of one-at-a-time, median of rounds \((.+?);", out)
    assert rounds is not None, out
    assert len(rounds.group(2).split()) == 2  # one ratio per round
    assert float(rounds.group(1)) > 0
    assert re.search(r"batch 8 in one session x[\d.]+, split across \d+ single-core sessions x[\d.]+", out)
    assert re.search(r"v2 binary\s+mean -?[\d.]+ ms", out)
    assert "decoded as each server does (nexus: scaled JPEG decode; plain kserve: whole)" in out
    for server in ("nexus", "plain kserve"):
        assert re.search(rf"{server}\s+v1 base64 JSON [\d.]+ - [\d.]+ = -?[\d.]+ ms", out), out


@pytest.mark.slow
def test_batching_only_measures_just_the_batching_comparison(detect_onnx, val_images):
    images = val_images[0].parent  # the sample dataset's validation JPEGs
    command = [
        sys.executable, str(BENCHMARK), "--onnx", str(detect_onnx), "--images", str(images),
        "--batching-only", "--duration", "0.6", "--concurrency", "4", "--gain-rounds", "1",
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "batching at concurrency 4, 1 rounds" in run.stdout
    ratio = r"batching: x[\d.]+ the throughput of one-at-a-time, median of rounds \(x[\d.]+;"
    assert re.search(ratio, run.stdout), run.stdout
    assert re.search(r"scaled JPEG decode \(the default\): x[\d.]+ the throughput", run.stdout), run.stdout
    cpu = re.search(r"server CPU per request, all threads .*?: batched ([\d.]+) \(([\d.]+)\)", run.stdout)
    assert cpu is not None, run.stdout
    assert float(cpu.group(1)) > 0 and 0 < float(cpu.group(2)) <= (os.cpu_count() or 1) + 0.5
    assert "ultralytics" not in run.stdout and "server overhead" not in run.stdout


def test_the_full_benchmark_needs_weights(detect_onnx):
    command = [sys.executable, str(BENCHMARK), "--onnx", str(detect_onnx)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "--weights is required" in run.stderr
