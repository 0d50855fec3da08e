"""CPU serving: closed-loop HTTP load with real JPEGs against three servers, side by side.

(a) Ultralytics ``predict`` in-process (no HTTP: the ceiling a server has to approach),
(b) the same model behind a plain KServe predictor (decode + ``Detector.predict`` per request, no
    batching), and (c) our batching predictor (``nexus.serving``), each at concurrency 1, 8 and 32.
Prints req/s, p50 and p99 per point and the ratios of (c) over (a) and (b).

    .venv/bin/python benchmarks/serving_cpu.py --weights best.pt [--onnx best.onnx] \
        [--images DIR] [--duration 10] [--concurrency 1 8 32] [--max-batch-size 8] [--gain-rounds 3]
    .venv/bin/python benchmarks/serving_cpu.py --onnx best.onnx --batching-only --gain-rounds 5

Batching on/off (and scaled JPEG decoding on/off) is measured at the top concurrency in rounds that
take turns on the same servers (``--batching-only`` measures just that, in two or three minutes).

The load generator runs on the same machine as the servers: on a small box it competes for the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from nexus.offline import ensure_offline
from nexus.serving.launcher import PredictorProcess, free_port, wait_ready

MODEL_NAME = "nexus-detector"
PLAIN_SERVER = textwrap.dedent(
    """
    import sys
    model_path, port = sys.argv[1], int(sys.argv[2])
    sys.argv = sys.argv[:1]
    import kserve
    from nexus.inference.detector import Detector
    from nexus.inference.records import detections_to_records
    from nexus.serving.server import _bind_rest_server_to, quiet_access_logs
    from nexus.vision.image_io import decode_image_bytes
    import base64

    class Plain(kserve.Model):
        def load(self):
            self.detector = Detector.from_path(model_path)
            self.ready = True
            return True

        def predict(self, payload, headers=None):
            images = [decode_image_bytes(base64.b64decode(i["b64"])) for i in payload["instances"]]
            return {"predictions": [detections_to_records(d) for d in self.detector.predict_arrays(images)]}

    model = Plain("nexus-detector")
    model.load()
    _bind_rest_server_to("127.0.0.1")
    server = kserve.ModelServer(http_port=port, enable_grpc=False, enable_latency_logging=False)
    quiet_access_logs()  # after the server configured logging, as nexus.serving.server.serve does
    server.start([model])
    """
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=None, help="Ultralytics .pt weights")
    parser.add_argument("--onnx", type=Path, default=None, help="its ONNX export (exported here if omitted)")
    parser.add_argument(
        "--images",
        type=Path,
        default=None,
        help="folder of JPEGs (if omitted: 32 synthetic 640x640 shapes images, about 200 kB each)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load point")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-delay-ms", type=float, default=4.0)
    parser.add_argument("--gain-rounds", type=int, default=3, help="rounds of the batching on/off comparison")
    parser.add_argument(
        "--batching-only",
        action="store_true",
        help="only the batching on/off comparison at the top concurrency (--weights may then be omitted)",
    )
    args = parser.parse_args()
    if args.weights is None and not (args.batching_only and args.onnx is not None):
        parser.error("--weights is required (only --batching-only with --onnx runs without it)")
    return args


def load_jpegs(folder: Path | None, count: int = 32) -> list[bytes]:
    if folder is not None:
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:count]
        if not paths:
            raise SystemExit(f"no JPEGs in {folder}")
        return [p.read_bytes() for p in paths]
    from nexus.datasets import SynthConfig, synthesize_dataset

    target = Path(tempfile.mkdtemp()) / "shapes"
    synthesize_dataset(target, SynthConfig(images=count, seed=0, imgsz=640, val_fraction=0.25))
    return [p.read_bytes() for p in sorted(target.rglob("*.jpg"))[:count]]


def summarize(latencies: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "rps": len(ordered) / elapsed,
        "p50": 1000 * statistics.median(ordered),
        "p99": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


async def http_load(url: str, jpegs: list[bytes], concurrency: int, duration: float) -> dict[str, float]:
    """Closed loop of v1 requests over ``concurrency`` keep-alive connections.

    The client writes pre-encoded HTTP/1.1 requests on raw asyncio streams, like wrk or k6 would:
    it shares the CPU with the server on a small box, and a full client library (httpx: 1-3 ms of
    CPU per 60-kB request) would take the cores the server needs.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = []
    for jpeg in jpegs:
        body = json.dumps({"instances": [{"b64": base64.b64encode(jpeg).decode()}]}).encode()
        head = (
            f"POST /v1/models/{MODEL_NAME}:predict HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    latencies: list[float] = []
    stop = time.perf_counter() + duration

    async def worker(offset: int) -> None:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        index = offset
        try:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                writer.write(requests[index % len(requests)])
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if length is None:
                    raise SystemExit(f"response without Content-Length: {head[:200]!r}")
                await reader.readexactly(int(length.group(1)))
                if head[9:12] != b"200":
                    raise SystemExit(f"predictor answered {head[:100]!r}")
                latencies.append(time.perf_counter() - started)
                index += concurrency
        finally:
            writer.close()

    begin = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return summarize(latencies, time.perf_counter() - begin)


def ultralytics_load(
    weights: Path, jpegs: list[bytes], concurrency: int, duration: float
) -> dict[str, float]:
    """Closed loop in-process: ``concurrency`` threads share one model behind a lock (not thread-safe)."""
    import cv2
    import numpy as np
    from ultralytics import YOLO

    model = YOLO(str(weights))
    lock = threading.Lock()
    latencies: list[float] = []
    stop = 0.0

    def worker(offset: int) -> None:
        index = offset
        while time.perf_counter() < stop:
            started = time.perf_counter()
            image = cv2.imdecode(np.frombuffer(jpegs[index % len(jpegs)], np.uint8), cv2.IMREAD_COLOR)
            with lock:
                model.predict(image, verbose=False)
            latencies.append(time.perf_counter() - started)
            index += concurrency

    model.predict(cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR), verbose=False)
    begin = time.perf_counter()
    stop = begin + duration
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summarize(latencies, time.perf_counter() - begin)


def main() -> None:
    args = parse_args()
    ensure_offline()
    jpegs = load_jpegs(args.images)
    onnx = args.onnx
    if onnx is None:
        from nexus.export.onnx_export import export_onnx

        onnx = export_onnx(args.weights, Path(tempfile.mkdtemp()) / "model.onnx")
    if args.batching_only:
        report_batching_gain(onnx, jpegs, max(args.concurrency), args)
        return
    results: dict[str, dict[int, dict[str, float]]] = {"ultralytics": {}, "plain-kserve": {}, "nexus": {}}
    for concurrency in args.concurrency:
        results["ultralytics"][concurrency] = ultralytics_load(
            args.weights, jpegs, concurrency, args.duration
        )

    port = free_port()
    plain = subprocess.Popen(
        [sys.executable, "-c", PLAIN_SERVER, str(onnx), str(port)], stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", MODEL_NAME, 120, plain)
        for concurrency in args.concurrency:
            results["plain-kserve"][concurrency] = asyncio.run(
                http_load(f"http://127.0.0.1:{port}", jpegs, concurrency, args.duration)
            )
        plain_overhead = overhead_ms(
            f"http://127.0.0.1:{port}", onnx, jpegs, protocols=("v1",), scaled_decode=False
        )
    finally:
        plain.terminate()
        plain.wait()

    with PredictorProcess.start(
        onnx, max_batch_size=args.max_batch_size, max_delay_ms=args.max_delay_ms, timeout_s=120
    ) as ours:
        for concurrency in args.concurrency:
            results["nexus"][concurrency] = asyncio.run(
                http_load(ours.url, jpegs, concurrency, args.duration)
            )
        our_overhead = overhead_ms(ours.url, onnx, jpegs)

    top = max(args.concurrency)

    print(f"\n{'server':<16}{'conc':>6}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, points in results.items():
        for concurrency, r in points.items():
            print(f"{name:<16}{concurrency:>6}{r['rps']:>10.1f}{r['p50']:>10.1f}{r['p99']:>10.1f}")
    print("\nratios (nexus req/s over the peer):")
    for concurrency in args.concurrency:
        ours = results["nexus"][concurrency]["rps"]
        peer = results["ultralytics"][concurrency]["rps"]
        plain_rps = results["plain-kserve"][concurrency]["rps"]
        print(
            f"  concurrency {concurrency:>3}: vs ultralytics x{ours / peer:.2f}"
            f"  vs plain kserve x{ours / plain_rps:.2f}"
        )

    report_batching_gain(onnx, jpegs, top, args)
    print("server overhead at concurrency 1 (latency - model time, target <= 1 ms):")
    work = our_overhead.get("server_work")
    if work is not None:
        print(
            f"  nexus, back-to-back requests against its own decode+preprocess+inference+postprocess "
            f"time for them ({work:.2f} ms, mean):"
        )
        for protocol, label in (("v1", "v1 base64 JSON"), ("v2", "v2 binary")):
            print(
                f"    {label:<15} mean {our_overhead[protocol + '_back_to_back_mean'] - work:.2f} ms"
                f"   p50 {our_overhead[protocol + '_back_to_back_p50'] - work:.2f} ms"
            )
    print(
        "  p50 against in-process decode+predict of the same images, decoded as each server does "
        "(nexus: scaled JPEG decode; plain kserve: whole):"
    )
    for name, measured in (("nexus", our_overhead), ("plain kserve", plain_overhead)):
        model_ms = measured["in_process"]
        print(
            f"    {name:<13} v1 base64 JSON {measured['v1']:.2f} - {model_ms:.2f} = "
            f"{measured['v1'] - model_ms:.2f} ms"
            + (
                f"   v2 binary {measured['v2']:.2f} - {model_ms:.2f} = {measured['v2'] - model_ms:.2f} ms"
                if "v2" in measured
                else "   (v2: the plain predictor reads v1 only)"
            )
        )


GAIN_SERVERS = {
    "batched": "batched (the defaults)",
    "one-at-a-time": "one-at-a-time (--max-batch-size 1: one image per pass)",
    "instances": "one image per pass, a pass per core at once",
    "whole-decode": "batched, every JPEG decoded whole (--full-decode)",
}


def report_batching_gain(onnx: Path, jpegs: list[bytes], top: int, args: argparse.Namespace) -> None:
    """Measure and print batching on/off at concurrency ``top`` and the model's own batch gain."""
    gains, cpu_per_request, cores_busy = batching_gain(onnx, jpegs, top, args)
    print(
        f"\nbatching at concurrency {top}, {args.gain_rounds} rounds taking turns on the same "
        f"{len(GAIN_SERVERS)} servers (req/s; a shared machine drifts, so each ratio compares "
        "neighbouring runs):"
    )
    for name, label in GAIN_SERVERS.items():
        print(f"  {label:<58}" + "".join(f"{rps:>8.1f}" for rps in gains[name]))
    ratios = [b / u for b, u in zip(gains["batched"], gains["one-at-a-time"], strict=True)]
    print(
        f"  batching: x{statistics.median(ratios):.2f} the throughput of one-at-a-time, median of rounds "
        f"({' '.join(f'x{r:.2f}' for r in ratios)}; target >= 1.8)"
    )
    instances = [b / u for b, u in zip(gains["batched"], gains["instances"], strict=True)]
    print(
        f"  and x{statistics.median(instances):.2f} the throughput of one image per pass with a pass per "
        "core at once (no batching, all cores busy)"
    )
    if all(cpu_per_request.values()):
        print(
            "  server CPU per request, all threads (ms, median of rounds; cores kept busy): "
            + ", ".join(
                f"{name} {statistics.median(cpu_per_request[name]):.2f} "
                f"({statistics.median(cores_busy[name]):.2f})"
                for name in GAIN_SERVERS
            )
        )
    scaled = [b / w for b, w in zip(gains["batched"], gains["whole-decode"], strict=True)]
    print(
        f"  scaled JPEG decode (the default): x{statistics.median(scaled):.2f} the throughput of decoding "
        "every JPEG whole, both batched (it counts only for JPEGs at least twice the model's input)"
    )
    from nexus.cpu import cpu_count
    from nexus.serving.config import BatchingConfig

    shards = BatchingConfig(max_batch_size=args.max_batch_size).resolve_shards(cpu_count())
    model_gain = model_batch_gain(onnx, args.max_batch_size)
    sharded_gain = model_batch_gain(onnx, args.max_batch_size, batch_shards=shards)
    side_by_side_gain = model_batch_gain(onnx, args.max_batch_size, batch_shards=shards, side_by_side=True)
    print(
        f"  the model alone (ONNX Runtime, no server), images/s over batch 1 in one session: batch "
        f"{args.max_batch_size} in one session x{model_gain:.2f}, split across {shards} single-core "
        f"sessions x{sharded_gain:.2f}, {shards} batches at once, one per single-core session (the "
        f"server under load) x{side_by_side_gain:.2f}"
    )


def batching_gain(
    onnx: Path, jpegs: list[bytes], concurrency: int, args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]]]:
    """req/s of four predictors at ``concurrency``, measured in turns for ``args.gain_rounds`` rounds:
    the defaults (batching), batching off (``max_batch_size=1``: one image per forward pass, one pass
    at a time), batching off with one single-core session per core running passes side by side, and
    the defaults with every JPEG decoded whole. Also each server's CPU milliseconds per request (all
    its threads) and the cores it kept busy, per round: a shared machine shifts throughput more than
    the work a request costs."""
    from nexus.cpu import cpu_count

    settings = {
        "batched": {"max_batch_size": args.max_batch_size, "max_delay_ms": args.max_delay_ms},
        "one-at-a-time": {"max_batch_size": 1, "max_delay_ms": 0},
        "instances": {"max_batch_size": 1, "max_delay_ms": 0, "batch_shards": max(2, cpu_count())},
        "whole-decode": {
            "max_batch_size": args.max_batch_size,
            "max_delay_ms": args.max_delay_ms,
            "extra_args": ["--full-decode"],
        },
    }
    measured: dict[str, list[float]] = {name: [] for name in settings}
    cpu_per_request: dict[str, list[float]] = {name: [] for name in settings}
    cores_busy: dict[str, list[float]] = {name: [] for name in settings}
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(PredictorProcess.start(onnx, timeout_s=120, **kwargs))
            for name, kwargs in settings.items()
        }
        for server in servers.values():  # warm each up under load before the measured rounds
            asyncio.run(http_load(server.url, jpegs, concurrency, 1.0))
        for _ in range(args.gain_rounds):
            for name, server in servers.items():
                cpu_before, started = process_cpu_seconds(server.process.pid), time.perf_counter()
                point = asyncio.run(http_load(server.url, jpegs, concurrency, args.duration / 2))
                cpu_after, elapsed = process_cpu_seconds(server.process.pid), time.perf_counter() - started
                measured[name].append(point["rps"])
                if cpu_before is not None and cpu_after is not None and point["requests"]:
                    cpu_per_request[name].append(1000 * (cpu_after - cpu_before) / point["requests"])
                    cores_busy[name].append((cpu_after - cpu_before) / elapsed)
    return measured, cpu_per_request, cores_busy


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, all its threads (None if it cannot be read)."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def _raw_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
    return (head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode() + body


def _raw_exchange(sock: socket.socket, request: bytes) -> bytes:
    """Write one pre-encoded request and read its answer (headers up to Content-Length bytes)."""
    sock.sendall(request)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise SystemExit("the server closed the connection")
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if length is None:
        raise SystemExit(f"response without Content-Length: {head[:200]!r}")
    while len(body) < int(length.group(1)):
        body += sock.recv(1 << 20)
    if head[9:12] != b"200":
        raise SystemExit(f"predictor answered {head[:100]!r}")
    return body


def _stage_seconds(url: str) -> dict[tuple[str, str], float] | None:
    """``(stage, sum|count)`` of ``nexus_predictor_stage_seconds`` from ``/metrics`` (None when absent)."""
    import http.client

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    found: dict[tuple[str, str], float] = {}
    pattern = r'nexus_predictor_stage_seconds_(sum|count)\{[^}]*stage="(\w+)"[^}]*\} (\S+)'
    for kind, stage, value in re.findall(pattern, text):
        found[(stage, kind)] = found.get((stage, kind), 0.0) + float(value)
    return found or None


def overhead_ms(
    url: str,
    onnx: Path,
    jpegs: list[bytes],
    rounds: int = 400,
    protocols: tuple[str, ...] = ("v1", "v2"),
    scaled_decode: bool = True,
) -> dict[str, float]:
    """Latencies of sequential requests at concurrency 1 (v1 base64 JSON, v2 binary tensors) and the
    model times they are compared with.

    The client writes pre-encoded requests on one blocking keep-alive socket (as wrk would), so the
    figure is the server's and the socket's, not a client library's (``http.client`` adds 0.3-0.9 ms
    per 100-kB request). Two model times:

    * ``in_process``: decode + predict of the same images in this process, interleaved request by
      request so that both see the same moments of a noisy machine. It decodes as the server does:
      ``scaled_decode`` (ours by default) decodes large JPEGs at 1/2-1/8 scale, as the predictor
      does, else every JPEG whole, as the plain KServe predictor does;
    * ``server_work``: our predictor's own decode + preprocess + inference + postprocess time (mean,
      from the sums and counts of its ``/metrics`` stage histograms) for a second run of requests
      sent back to back, as in a closed loop at concurrency 1.
    """
    from nexus.inference.detector import Detector
    from nexus.vision.image_io import decode_image_bytes, decode_image_for_input, pixels_and_shape

    detector = Detector.from_path(onnx)
    input_shape = detector.input_size(None)

    def decode_and_predict(jpeg: bytes) -> None:
        if not scaled_decode:
            detector.predict_arrays([decode_image_bytes(jpeg)])
            return
        pixels, shape = pixels_and_shape(decode_image_for_input(jpeg, input_shape, "image"))
        detector.predict_arrays([pixels], original_shapes=[shape])

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sock = socket.create_connection((host, port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    requests = []
    for jpeg in jpegs:
        v1_body = json.dumps({"instances": [{"b64": base64.b64encode(jpeg).decode()}]}).encode()
        tensor = struct.pack("<I", len(jpeg)) + jpeg
        header = json.dumps(
            {"inputs": [{"name": "images", "shape": [1], "datatype": "BYTES",
                         "parameters": {"binary_data_size": len(tensor)}}]}
        ).encode()  # fmt: skip
        requests.append(
            {
                "v1": _raw_request(
                    host,
                    port,
                    f"/v1/models/{MODEL_NAME}:predict",
                    v1_body,
                    {"Content-Type": "application/json"},
                ),
                "v2": _raw_request(
                    host,
                    port,
                    f"/v2/models/{MODEL_NAME}/infer",
                    header + tensor,
                    {
                        "Content-Type": "application/octet-stream",
                        "Inference-Header-Content-Length": str(len(header)),
                    },
                ),
            }
        )
    warmup = 20
    # Requests interleaved with in-process runs: the in-process yardstick, the same for both servers.
    times: dict[str, list[float]] = {name: [] for name in (*protocols, "in_process")}
    for index in range(rounds):
        for protocol in protocols:
            started = time.perf_counter()
            _raw_exchange(sock, requests[index % len(requests)][protocol])
            times[protocol].append(time.perf_counter() - started)
        started = time.perf_counter()
        decode_and_predict(jpegs[index % len(jpegs)])
        times["in_process"].append(time.perf_counter() - started)
    measured = {name: 1000 * statistics.median(values[warmup:]) for name, values in times.items()}
    # Back-to-back requests (a closed loop at concurrency 1) against the server's own stage times
    # for exactly these requests. The first request after an idle gap (such as an in-process run)
    # pays for waking the server's threads, which a closed loop does not.
    before = _stage_seconds(url)
    back_to_back: dict[str, list[float]] = {protocol: [] for protocol in protocols}
    for index in range(rounds):
        for protocol in protocols:
            started = time.perf_counter()
            _raw_exchange(sock, requests[index % len(requests)][protocol])
            back_to_back[protocol].append(time.perf_counter() - started)
    after = _stage_seconds(url)
    sock.close()
    for protocol, values in back_to_back.items():
        measured[f"{protocol}_back_to_back_p50"] = 1000 * statistics.median(values)
        measured[f"{protocol}_back_to_back_mean"] = 1000 * statistics.mean(values)
    if before is not None and after is not None:
        work = [
            (after[(stage, "sum")] - before.get((stage, "sum"), 0.0))
            / max(1.0, after[(stage, "count")] - before.get((stage, "count"), 0.0))
            for stage, kind in after
            if kind == "sum" and stage != "queue_wait"
        ]
        measured["server_work"] = 1000 * sum(work)
    return measured


def model_batch_gain(
    onnx: Path, batch_size: int, seconds: float = 3.0, batch_shards: int = 1, side_by_side: bool = False
) -> float:
    """Images/s of ``batch_size`` forward passes over images/s of batch 1 (which always runs in the
    main session). Larger batches are split across ``batch_shards`` sessions, or with
    ``side_by_side`` run whole, ``batch_shards`` at once from as many threads (one session each)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from nexus.inference.detector import Detector

    detector = Detector.from_path(onnx, batch_shards=batch_shards)
    height, width = detector.metadata.imgsz
    rates = []
    for size in (1, batch_size):
        batch = np.random.default_rng(0).random((size, 3, height, width), dtype=np.float32)
        callers = batch_shards if side_by_side and size > 1 else 1

        def loop(deadline: float, batch: np.ndarray = batch, spread: bool = callers == 1) -> int:
            runs = 0
            while time.perf_counter() < deadline:
                detector.backend.infer(batch, spread=spread)
                runs += 1
            return runs

        detector.backend.infer(batch)
        begin = time.perf_counter()
        with ThreadPoolExecutor(callers) as pool:
            runs = sum(pool.map(loop, [begin + seconds] * callers))
        rates.append(runs * size / (time.perf_counter() - begin))
    return rates[1] / rates[0]


if __name__ == "__main__":
    main()
