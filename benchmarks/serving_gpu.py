"""GPU serving path: 720p JPEG bytes in -> detections out, beside the raw FP16 forward pass.

Measures, for each batch size, (1) end-to-end images/s of our GPU request path (nvJPEG decode via
``torchvision.io.decode_jpeg(device="cuda")``, torch letterbox, ``TorchBackend`` FP16 + CUDA graphs,
NMS), (2) the raw FP16 CUDA-graph forward pass alone on a ready tensor, and (3) Ultralytics predict
on decoded frames, and prints the ratios and the issue's targets. Needs a CUDA GPU; takes a couple
of minutes.

    .venv/bin/python benchmarks/serving_gpu.py [--weights best.pt] [--batches 1 8 32 64] [--seconds 5]

Without ``--weights`` it builds an untrained YOLOv8n (80 classes, 640 px) from Ultralytics' model
config: nothing is downloaded, and speed does not depend on what the weights learned (an untrained
head keeps few boxes, so NMS costs a little less than with a trained model on busy frames).
``--device cpu`` runs the same code on the CPU as a smoke check of the script; its figures say
nothing about the GPU targets.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from nexus.inference.detector import Detector
from nexus.offline import ensure_offline
from nexus.serving.gpu_pipeline import GpuPipeline
from nexus.vision.postprocess import PostprocessOptions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=None, help="default: an untrained YOLOv8n")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per point")
    parser.add_argument("--device", default="0", help="CUDA device index, or cpu for a smoke check")
    parser.add_argument("--frames", type=int, default=64, help="distinct 720p JPEGs to cycle through")
    return parser.parse_args(argv)


# The GPU targets (H100/H200, YOLOv8n at 640 from 720p JPEGs).
TARGET_IMAGES_PER_SECOND = 4000
TARGET_SHARE_OF_FORWARD = 0.60
TARGET_TIMES_ULTRALYTICS = 5.0


def untrained_yolov8n(folder: Path) -> Path:
    """A YOLOv8n checkpoint built from Ultralytics' bundled model config (no download)."""
    from ultralytics import YOLO

    path = folder / "yolov8n-untrained.pt"
    YOLO("yolov8n.yaml").save(str(path))
    return path


def frames_720p(count: int = 64) -> list[bytes]:
    """Synthetic but JPEG-realistic 1280x720 frames (~150 KiB each): noise, gradients and shapes."""
    rng = np.random.default_rng(0)
    out = []
    for index in range(count):
        image = cv2.GaussianBlur(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8), (5, 5), 0)
        for _ in range(12):
            x, y = int(rng.integers(0, 1200)), int(rng.integers(0, 640))
            color = tuple(int(c) for c in rng.integers(0, 255, 3))
            cv2.rectangle(
                image, (x, y), (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 200))), color, -1
            )
        cv2.putText(image, str(index), (40, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        out.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return out


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(run, images_per_call: int, seconds: float, device: torch.device) -> float:
    run()  # warm-up (captures CUDA graphs)
    synchronize(device)
    calls, started = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - started < seconds:
        run()
        calls += 1
    synchronize(device)
    return calls * images_per_call / (time.perf_counter() - started)


def verdict(rows: list[dict[str, float]], on_gpu: bool) -> list[str]:
    """The targets against the best end-to-end batch (and Ultralytics' best batch)."""
    best = max(rows, key=lambda row: row["e2e"])
    ultralytics_best = max(row["ultra"] for row in rows)
    share, times = best["e2e"] / best["fwd"], best["e2e"] / ultralytics_best
    checks = [
        (f"end-to-end {best['e2e']:.0f} img/s (batch {best['batch']:.0f})", f">= {TARGET_IMAGES_PER_SECOND}",
         best["e2e"] >= TARGET_IMAGES_PER_SECOND),
        (f"end-to-end / raw forward at that batch: {share:.2f}", f">= {TARGET_SHARE_OF_FORWARD:.2f}",
         share >= TARGET_SHARE_OF_FORWARD),
        (f"end-to-end / Ultralytics' best ({ultralytics_best:.0f} img/s): x{times:.2f}",
         f">= x{TARGET_TIMES_ULTRALYTICS:.0f}", times >= TARGET_TIMES_ULTRALYTICS),
    ]  # fmt: skip
    lines = [f"  {what}: target {target}: {'met' if ok else 'NOT met'}" for what, target, ok in checks]
    if not on_gpu:
        lines.insert(0, "  (cpu smoke run: these figures say nothing about the GPU targets)")
    return lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ensure_offline()
    on_gpu = args.device != "cpu"
    if on_gpu and not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU (or --device cpu for a smoke check of this script)")
    from torchvision.io import ImageReadMode, decode_jpeg

    jpegs = frames_720p(args.frames)
    with tempfile.TemporaryDirectory() as scratch:
        weights = args.weights or untrained_yolov8n(Path(scratch))
        detector = Detector.from_path(weights, device=args.device)
        from ultralytics import YOLO

        ultralytics_model = YOLO(str(weights))
    pipeline = GpuPipeline(detector)
    device = pipeline.device
    name = torch.cuda.get_device_name(device) if on_gpu else "cpu"
    print(f"{name}; {weights.name}; backend {detector.backend.name}; input {pipeline.input_shape}")
    print(
        f"{'batch':>6}{'end-to-end img/s':>20}{'forward img/s':>16}{'e2e/fwd':>9}"
        f"{'ultralytics img/s':>20}{'e2e/ultra':>11}"
    )
    decoded = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    rows = []
    for batch in args.batches:
        repeats = -(-batch // len(jpegs))
        chunk = [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in (jpegs * repeats)[:batch]]
        options = [PostprocessOptions()] * batch

        def end_to_end(chunk=chunk, options=options) -> None:
            images = decode_jpeg(chunk, mode=ImageReadMode.RGB, device=device)
            pipeline.run(images, options)

        static = torch.rand((batch, 3, *pipeline.input_shape), device=device).to(pipeline.dtype)
        if on_gpu:
            static = static.contiguous(memory_format=torch.channels_last)

        def forward(static=static) -> None:
            pipeline.backend.infer_tensor(static)

        frames = (decoded * repeats)[:batch]

        def ultralytics(frames=frames) -> None:
            # FP16 on the GPU (quantize replaces the deprecated half= in Ultralytics 8.4)
            precision = 16 if on_gpu else 32
            ultralytics_model.predict(frames, quantize=precision, device=args.device, verbose=False)

        row = {
            "batch": batch,
            "e2e": rate(end_to_end, batch, args.seconds, device),
            "fwd": rate(forward, batch, args.seconds, device),
            "ultra": rate(ultralytics, batch, args.seconds, device),
        }
        rows.append(row)
        print(
            f"{batch:>6}{row['e2e']:>20.0f}{row['fwd']:>16.0f}{row['e2e'] / row['fwd']:>9.2f}"
            f"{row['ultra']:>20.0f}{row['e2e'] / row['ultra']:>10.2f}x"
        )
    print("targets:")
    print("\n".join(verdict(rows, on_gpu)))


if __name__ == "__main__":
    main()
