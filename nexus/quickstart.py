"""The main job on the embedded defaults: synthesize data, train, export, evaluate, predict.

Later the Kubeflow ``training`` pipeline runs the same steps as components; this is the one-process
version that needs nothing but the installed package.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus.settings import NexusSettings


@dataclass(frozen=True)
class QuickstartConfig:
    """Sizes of the main job; the defaults reach mAP50 >= 0.9 on the sample data on 2 CPU cores.

    Attributes:
        workdir: where the dataset, runs and exports go (default ``$NEXUS_HOME/quickstart``).
        images: synthetic images to generate.
        imgsz: image and training size.
        epochs: training epochs.
        seed: dataset and training seed.
        model: architecture YAML (or weights file) to train.
        batch: images per batch.
        nominal_batch: images per optimizer step (Ultralytics' ``nbs``; its default 64 accumulates 4
            batches of 16, which leaves the 300 training images too few steps: mAP50 0.81 after 30
            epochs where 16 reaches 0.98).
    """

    workdir: Path | None = None
    images: int = 360
    imgsz: int = 160
    epochs: int = 30
    seed: int = 0
    model: str = "yolov8n.yaml"
    batch: int = 16
    nominal_batch: int = 16

    def __post_init__(self) -> None:
        """Check every size before the dataset is written: a later run would reuse that dataset."""
        from nexus.errors import ModelLoadError, NexusError
        from nexus.inference.metadata import MAX_IMGSZ
        from nexus.training.config import model_kind

        checks = [
            (self.images >= 2, f"images={self.images} must be at least 2 (one train and one val)"),
            (
                32 <= self.imgsz <= MAX_IMGSZ and self.imgsz % 32 == 0,
                f"imgsz={self.imgsz} must be a multiple of 32 (the model stride) up to {MAX_IMGSZ}, e.g. 160",
            ),
            (self.epochs >= 1, f"epochs={self.epochs} must be at least 1"),
            (self.batch >= 1, f"batch={self.batch} must be at least 1"),
            (self.nominal_batch >= 1, f"nominal_batch={self.nominal_batch} must be at least 1"),
            (self.seed >= 0, f"seed={self.seed} must be 0 or more"),
        ]
        for ok, message in checks:
            if not ok:
                raise NexusError(message)
        if model_kind(self.model) == "weights" and not Path(self.model).expanduser().is_file():
            raise ModelLoadError(
                "file not found; pass an existing .pt file or an architecture YAML", path=self.model
            )


def run_quickstart(
    config: QuickstartConfig, settings: NexusSettings | None = None, log=print
) -> dict[str, Any]:
    """Run every step and return a JSON-ready summary (also written to ``summary.json``)."""
    from nexus.datasets import SynthConfig, YoloDataset, synthesize_dataset, validate_dataset
    from nexus.evaluation.model_eval import evaluate_model
    from nexus.export import ExportConfig, export_model
    from nexus.inference.detector import Detector
    from nexus.inference.records import detections_to_records
    from nexus.training import TrainConfig, train_model

    settings = settings or NexusSettings.from_env()
    workdir = Path(config.workdir or settings.home / "quickstart").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def step(name: str):
        timings[name] = time.perf_counter()
        log(f"==> {name}")

    step("dataset")
    data_dir = workdir / "data" / "shapes"
    if (data_dir / "dataset.yaml").is_file():
        dataset = YoloDataset.load(data_dir)
    else:
        synth = SynthConfig(images=config.images, seed=config.seed, imgsz=config.imgsz)
        dataset = synthesize_dataset(data_dir, synth)
    report = validate_dataset(dataset.root)
    counts = ", ".join(f"{split}={len(dataset.image_paths(split))}" for split in dataset.splits)
    log(f"    {dataset.root}: {counts} images, {len(report.errors)} errors")

    step("train")
    train = train_model(
        TrainConfig(
            data=dataset.root,
            model=config.model,
            epochs=config.epochs,
            imgsz=config.imgsz,
            batch=config.batch,
            seed=config.seed,
            name="quickstart",
            project=workdir / "runs",
            extra={"nbs": config.nominal_batch},
        ),
        settings=settings,
    )
    log(f"    best weights {train.best_weights}; MLflow run {train.mlflow_run_id}")

    step("export")
    exported = export_model(
        ExportConfig(
            weights=train.best_weights,
            out_dir=workdir / "export",
            formats=("onnx", "int8"),
            data=dataset.root,
        )
    ).files

    step("evaluate")
    evaluations = {}
    for name, path in exported.items():
        evaluation = evaluate_model(path, dataset.root, plots_dir=workdir / "eval" / name)
        evaluations[name] = {"mAP50": evaluation.map50, "mAP50-95": evaluation.map50_95}
        log(f"    {name}: mAP50 {evaluation.map50:.4f}  mAP50-95 {evaluation.map50_95:.4f}")

    step("predict")
    sample = dataset.image_paths("val")[0]
    detections = Detector.from_path(exported["int8"]).predict(str(sample))[0]

    summary = {
        "dataset": str(dataset.root),
        "train": {
            "run_dir": str(train.run_dir),
            "best_weights": str(train.best_weights),
            "mlflow_run_id": train.mlflow_run_id,
            "mlflow_tracking_uri": settings.mlflow_tracking_uri,
            "metrics": train.metrics,
        },
        "export": {name: str(path) for name, path in exported.items()},
        "evaluation": evaluations,
        "prediction": {"image": str(sample), "detections": detections_to_records(detections)},
    }
    ends = [*list(timings.values())[1:], time.perf_counter()]
    summary["seconds"] = {
        name: round(end - start, 1) for (name, start), end in zip(timings.items(), ends, strict=True)
    }
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
