"""CPU inference: Ultralytics predict vs. our FP32 and INT8 ONNX paths, side by side, with mAP.

Runs YOLOv8n (by default the main job's model, `bash scripts/main.sh` first) at 640 and 320 px,
batch 1 and 8, on frames made from the sample validation split, and prints milliseconds per image,
the speed-up over Ultralytics and the mAP50-95 of each path on the validation split.

    .venv/bin/python benchmarks/cpu_inference.py [--weights best.pt] [--data DATASET] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from nexus.offline import ensure_offline

DEFAULT_WORKDIR = Path(".nexus/quickstart")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=DEFAULT_WORKDIR / "runs/quickstart/weights/best.pt")
    parser.add_argument("--data", type=Path, default=DEFAULT_WORKDIR / "data/shapes")
    parser.add_argument("--sizes", type=int, nargs="+", default=[640, 320])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=20, help="timed batches per configuration")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds; the best is kept")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-map", action="store_true", help="only time, do not evaluate mAP")
    return parser.parse_args()


def time_per_image(run, images: list[np.ndarray], batch: int, repeats: int) -> float:
    """Median milliseconds per image over ``repeats`` batches, after two warm-up batches."""
    batches = [images[(i * batch) % len(images) :][:batch] for i in range(repeats + 2)]
    batches = [b if len(b) == batch else images[:batch] for b in batches]
    samples = []
    for index, chunk in enumerate(batches):
        start = time.perf_counter()
        run(chunk)
        if index >= 2:
            samples.append((time.perf_counter() - start) * 1000 / batch)
    return statistics.median(samples)


def ultralytics_map(model, dataset, imgsz: int) -> float:
    from nexus.detections import Detections
    from nexus.evaluation import evaluate_detections
    from nexus.vision.image_io import load_image

    ground_truth, predictions, sizes = [], [], []
    for path in dataset.image_paths("val"):
        image = load_image(path)
        result = model.predict(image, imgsz=imgsz, conf=0.001, iou=0.7, verbose=False)[0]
        boxes = result.boxes
        predictions.append(Detections(boxes.xyxy.numpy(), boxes.conf.numpy(), boxes.cls.numpy().astype(int)))
        ground_truth.append(dataset.read_annotations(path))
        sizes.append(image.shape[:2])
    return evaluate_detections(ground_truth, predictions, dataset.names, sizes).coco.stats["AP"]


def main() -> None:
    args = parse_args()
    ensure_offline()
    import torch
    import ultralytics.utils.torch_utils as torch_utils
    from ultralytics import YOLO

    from nexus.datasets import YoloDataset
    from nexus.evaluation.model_eval import evaluate_model
    from nexus.export import ExportConfig, export_model
    from nexus.inference.detector import Detector
    from nexus.vision.image_io import load_image
    from nexus.vision.postprocess import PostprocessOptions

    if not args.weights.is_file():
        raise SystemExit(f"{args.weights}: no weights; run `bash scripts/main.sh` first or pass --weights")
    torch.set_num_threads(args.threads)
    torch_utils.NUM_THREADS = args.threads
    dataset = YoloDataset.load(args.data)
    frames = [cv2.resize(load_image(p), (640, 480)) for p in dataset.image_paths("val")[:16]]
    scratch = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    files = export_model(
        ExportConfig(weights=args.weights, out_dir=scratch, formats=("onnx", "int8"), data=args.data)
    ).files
    options = PostprocessOptions()
    rows = []
    reference = YOLO(str(args.weights))
    detectors = {name: Detector.from_path(files[name]) for name in ("onnx", "int8")}
    for imgsz in args.sizes:
        for batch in args.batches:
            runners = {
                "ultralytics": lambda chunk, s=imgsz: reference.predict(chunk, imgsz=s, verbose=False),
                **{
                    name: lambda chunk, d=detector, s=imgsz: d.predict_arrays(chunk, options, imgsz=s)
                    for name, detector in detectors.items()
                },
            }
            # Several rounds, each path in its own block, best round kept: a shared machine's noise
            # (and torch's spinning OpenMP threads right after its own calls) only ever slows a block.
            timings = {name: float("inf") for name in runners}
            for _ in range(args.rounds):
                for name, run in runners.items():
                    timings[name] = min(timings[name], time_per_image(run, frames, batch, args.repeats))
            rows.append((imgsz, batch, timings))
            print(
                f"imgsz {imgsz:4d} batch {batch}: ultralytics {timings['ultralytics']:7.2f} ms/img | "
                f"ours fp32 {timings['onnx']:7.2f} ({timings['ultralytics'] / timings['onnx']:.2f}x) | "
                f"ours int8 {timings['int8']:7.2f} ({timings['ultralytics'] / timings['int8']:.2f}x)",
                flush=True,
            )
    if not args.skip_map:
        print("\nmAP50-95 on the validation split:")
        for imgsz in args.sizes:
            maps = {"ultralytics": ultralytics_map(YOLO(str(args.weights)), dataset, imgsz)}
            for name in ("onnx", "int8"):
                maps[name] = evaluate_model(files[name], args.data, imgsz=imgsz).map50_95
            print(
                f"imgsz {imgsz:4d}: ultralytics {maps['ultralytics']:.4f} | ours fp32 {maps['onnx']:.4f} | "
                f"ours int8 {maps['int8']:.4f} "
                f"(int8 - fp32 = {100 * (maps['int8'] - maps['onnx']):+.2f} points)"
            )


if __name__ == "__main__":
    main()
