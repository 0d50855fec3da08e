"""Soak: steady load on one predictor for minutes; its resident memory must stay within 10% of its
level after warm-up.

The load is closed-loop at a fixed concurrency and mixes what a real endpoint sees: v1 JSON with
base64 JPEGs, v2 binary tensors, several images per request, and bad requests (corrupt bytes, an
unknown model) that must keep answering 4xx. RSS is read from ``/proc/<pid>/status`` every
``--sample-seconds``.

    .venv/bin/python benchmarks/serving_soak.py --weights best.pt [--onnx best.onnx] [--minutes 10]

Exits 1 when memory grows past the limit or any request gets an unexpected status.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from nexus.serving.launcher import PredictorProcess

MODEL_NAME = "nexus-detector"


@dataclass
class SoakResult:
    """What a soak measured: RSS samples (seconds since the timed phase began, MiB) and statuses."""

    baseline_mib: float
    samples: list[tuple[float, float]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)

    @property
    def peak_mib(self) -> float:
        return max((mib for _, mib in self.samples), default=self.baseline_mib)

    @property
    def growth(self) -> float:
        """Peak RSS over the post-warm-up baseline, minus one (0.05 = 5% more)."""
        return self.peak_mib / self.baseline_mib - 1


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def request_mix(jpegs: list[bytes]) -> list[tuple[str, dict, bytes, int]]:
    """``(path, headers, body, expected status)`` cycled by the load: mostly good, some bad."""
    v1 = f"/v1/models/{MODEL_NAME}:predict"
    v2 = f"/v2/models/{MODEL_NAME}/infer"
    json_headers = {"content-type": "application/json"}
    mix: list[tuple[str, dict, bytes, int]] = []
    for index, jpeg in enumerate(jpegs):
        one = {"instances": [{"b64": base64.b64encode(jpeg).decode()}]}
        mix.append((v1, json_headers, json.dumps(one).encode(), 200))
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "image",
                        "shape": [1],
                        "datatype": "BYTES",
                        "parameters": {"binary_data_size": len(jpeg) + 4},
                    }
                ]
            }
        ).encode()
        binary_headers = {
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(header)),
        }
        mix.append((v2, binary_headers, header + len(jpeg).to_bytes(4, "little") + jpeg, 200))
        if index % 4 == 0:
            several = {"instances": [{"b64": base64.b64encode(j).decode()} for j in jpegs[index : index + 3]]}
            mix.append((v1, json_headers, json.dumps(several).encode(), 200))
            corrupt = {"instances": [{"b64": base64.b64encode(jpeg[: len(jpeg) // 3]).decode()}]}
            mix.append((v1, json_headers, json.dumps(corrupt).encode(), 400))
            mix.append(("/v1/models/no-such-model:predict", json_headers, json.dumps(one).encode(), 404))
    return mix


async def closed_loop(
    url: str,
    mix: list[tuple[str, dict, bytes, int]],
    concurrency: int,
    seconds: float,
    on_tick=None,
    tick_seconds: float = 10.0,
) -> tuple[Counter[str], Counter[str]]:
    statuses: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker(offset: int) -> None:
            index = offset
            while time.perf_counter() < stop:
                path, headers, body, expected = mix[index % len(mix)]
                response = await client.post(path, content=body, headers=headers)
                statuses[str(response.status_code)] += 1
                if response.status_code != expected:
                    unexpected[f"{path} {response.status_code} (expected {expected})"] += 1
                index += concurrency

        async def ticker() -> None:
            while on_tick is not None and time.perf_counter() < stop:
                await asyncio.sleep(min(tick_seconds, max(0.0, stop - time.perf_counter())))
                on_tick()

        await asyncio.gather(ticker(), *(worker(i) for i in range(concurrency)))
    return statuses, unexpected


def soak(
    onnx: Path,
    jpegs: list[bytes],
    *,
    seconds: float,
    warmup_seconds: float = 30.0,
    concurrency: int = 8,
    sample_seconds: float = 10.0,
    max_batch_size: int = 8,
) -> SoakResult:
    """Warm a predictor up, take its RSS as the baseline, then load it for ``seconds``, sampling RSS."""
    mix = request_mix(jpegs)
    with PredictorProcess.start(onnx, max_batch_size=max_batch_size, timeout_s=120) as server:
        pid = server.process.pid
        # Warm-up at a higher concurrency than the soak, so every batch size has been allocated once.
        asyncio.run(closed_loop(server.url, mix, max(concurrency, 2 * max_batch_size), warmup_seconds))
        result = SoakResult(baseline_mib=rss_mib(pid))
        began = time.perf_counter()

        def sample() -> None:
            result.samples.append((time.perf_counter() - began, rss_mib(pid)))

        statuses, unexpected = asyncio.run(
            closed_loop(server.url, mix, concurrency, seconds, on_tick=sample, tick_seconds=sample_seconds)
        )
        sample()
        result.statuses, result.unexpected = statuses, unexpected
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="Ultralytics .pt (exported here)")
    parser.add_argument("--onnx", type=Path, default=None, help="an exported model")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--max-growth", type=float, default=0.10, help="allowed RSS growth (0.10 = 10%%)")
    args = parser.parse_args()
    if args.onnx is None and args.weights is None:
        parser.error("pass --onnx or --weights")
    onnx = args.onnx
    if onnx is None:
        from nexus.export.onnx_export import export_onnx

        onnx = export_onnx(args.weights, Path(tempfile.mkdtemp()) / "model.onnx")
    from serving_cpu import load_jpegs

    result = soak(
        onnx,
        load_jpegs(None),
        seconds=args.minutes * 60,
        warmup_seconds=args.warmup_seconds,
        concurrency=args.concurrency,
        sample_seconds=args.sample_seconds,
    )
    print(f"RSS after warm-up: {result.baseline_mib:.1f} MiB")
    for seconds, mib in result.samples:
        print(f"  t={seconds:7.1f} s  RSS {mib:8.1f} MiB  ({100 * (mib / result.baseline_mib - 1):+.1f}%)")
    print(f"requests by status: {dict(result.statuses)}")
    verdict = "met" if result.growth <= args.max_growth and not result.unexpected else "NOT met"
    print(
        f"peak RSS {result.peak_mib:.1f} MiB = {100 * result.growth:+.1f}% of the warm-up level "
        f"(limit +{100 * args.max_growth:.0f}%); unexpected statuses: {dict(result.unexpected) or 'none'}: "
        f"{verdict}"
    )
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    raise SystemExit(main())
