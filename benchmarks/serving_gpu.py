"""GPU serving path: 720p JPEG bytes in -> detections out, beside the raw FP16 forward pass.

Measures, for each batch size, (1) end-to-end images/s of our GPU request path (nvJPEG decode via
``torchvision.io.decode_jpeg(device="cuda")``, torch letterbox, ``TorchBackend`` FP16 + CUDA graphs,
NMS), (2) the raw FP16 CUDA-graph forward pass alone on a ready tensor, and (3) Ultralytics predict
on decoded frames, and prints the ratios. Needs a CUDA GPU; takes a couple of minutes.

    .venv/bin/python benchmarks/serving_gpu.py --weights best.pt [--batches 1 8 32 64] [--seconds 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from nexus.inference.detector import Detector
from nexus.offline import ensure_offline
from nexus.serving.gpu_pipeline import GpuPipeline
from nexus.vision.postprocess import PostprocessOptions


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per point")
    parser.add_argument("--device", default="0")
    return parser.parse_args()


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


def rate(run, images_per_call: int, seconds: float) -> float:
    run()  # warm-up (captures CUDA graphs)
    torch.cuda.synchronize()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run()
        calls += 1
    torch.cuda.synchronize()
    return calls * images_per_call / (time.perf_counter() - started)


def main() -> None:
    args = parse_args()
    ensure_offline()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    from torchvision.io import ImageReadMode, decode_jpeg

    jpegs = frames_720p()
    detector = Detector.from_path(args.weights, device=args.device)
    pipeline = GpuPipeline(detector)
    device = pipeline.device
    print(
        f"{torch.cuda.get_device_name(device)}; backend {detector.backend.name}; input {pipeline.input_shape}"
    )
    print(
        f"{'batch':>6}{'end-to-end img/s':>20}{'forward img/s':>16}{'ultralytics img/s':>20}{'e2e/ultra':>11}"
    )

    from ultralytics import YOLO

    ultralytics_model = YOLO(str(args.weights))
    decoded = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    for batch in args.batches:
        chunk = [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in (jpegs * 4)[:batch]]
        options = [PostprocessOptions()] * batch

        def end_to_end(chunk=chunk, options=options) -> None:
            images = decode_jpeg(chunk, mode=ImageReadMode.RGB, device=device)
            pipeline.run(images, options)

        static = torch.rand((batch, 3, *pipeline.input_shape), device=device).half()
        static = static.contiguous(memory_format=torch.channels_last)

        def forward(static=static) -> None:
            pipeline.backend.infer_tensor(static)

        frames = (decoded * 4)[:batch]

        def ultralytics(frames=frames) -> None:
            ultralytics_model.predict(frames, half=True, device=args.device, verbose=False)

        e2e = rate(end_to_end, batch, args.seconds)
        fwd = rate(forward, batch, args.seconds)
        ultra = rate(ultralytics, batch, args.seconds)
        print(f"{batch:>6}{e2e:>20.0f}{fwd:>16.0f}{ultra:>20.0f}{e2e / ultra:>10.2f}x")


if __name__ == "__main__":
    main()
