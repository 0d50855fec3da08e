"""Evaluate a model on a dataset split: run the ``Detector``, then COCO metrics, tables and plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.evaluation.detection_metrics import DetectionEvaluation, evaluate_detections


@dataclass
class ModelEvaluationReport:
    """Box (and, for segmentation models, mask) metrics of one model on one dataset split.

    Attributes:
        model: the model file evaluated.
        dataset: the dataset folder.
        split: which split (``val`` by default).
        images: how many images were evaluated.
        box: COCO box metrics, per-class rows, PR curves and the confusion matrix.
        mask: the same for masks, or ``None`` for detection models.
        plots: PNG files written (PR curve, per-class AP, confusion matrix).
    """

    model: str
    dataset: str
    split: str
    images: int
    box: DetectionEvaluation
    mask: DetectionEvaluation | None = None
    plots: list[Path] = field(default_factory=list)

    @property
    def map50(self) -> float:
        return self.box.coco.stats["AP50"]

    @property
    def map50_95(self) -> float:
        return self.box.coco.stats["AP"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "images": self.images,
            "box": self.box.to_dict(),
            "mask": None if self.mask is None else self.mask.to_dict(),
            "plots": [str(p) for p in self.plots],
        }


def evaluate_model(
    model: str | Path,
    data: str | Path,
    split: str = "val",
    conf: float = 0.001,
    iou: float = 0.7,
    imgsz: int | None = None,
    max_det: int = 300,
    plots_dir: Path | None = None,
    device: str = "cpu",
) -> ModelEvaluationReport:
    """Run ``model`` over ``data``'s ``split`` and compute COCO metrics (Ultralytics val's thresholds).

    Example:
        >>> report = evaluate_model("model.onnx", "data/shapes")  # doctest: +SKIP
        >>> round(report.map50, 3)  # doctest: +SKIP
        0.95
    """
    from nexus.datasets import YoloDataset
    from nexus.errors import DatasetError
    from nexus.inference.detector import Detector
    from nexus.vision.image_io import load_image

    detector = Detector.from_path(model, device=device)
    dataset = YoloDataset.load(data)
    if len(dataset.names) != len(detector.names):
        raise DatasetError(
            f"the model has {len(detector.names)} classes but the dataset has {len(dataset.names)}; "
            "evaluate on the dataset the model was trained for",
            path=dataset.yaml_path,
        )
    segment = detector.task == "segment"
    images = dataset.image_paths(split)
    if not images:
        raise DatasetError(f"split {split!r} has no images", path=dataset.root)
    ground_truth, predictions, sizes = [], [], []
    for path in images:
        image = load_image(path)
        sizes.append(image.shape[:2])
        ground_truth.append(dataset.read_annotations(path, with_masks=segment))
        predictions += detector.predict_arrays([image], _options(conf, iou, max_det), imgsz=imgsz)
    names = dataset.names
    box = evaluate_detections(ground_truth, [_boxes_only(p) for p in predictions], names, sizes, "bbox")
    mask = evaluate_detections(ground_truth, predictions, names, sizes, "segm") if segment else None
    plots: list[Path] = []
    if plots_dir is not None:
        from nexus.evaluation.plots import write_evaluation_plots

        plots = write_evaluation_plots(box, Path(plots_dir))
    return ModelEvaluationReport(
        model=str(model),
        dataset=str(dataset.root),
        split=split,
        images=len(images),
        box=box,
        mask=mask,
        plots=plots,
    )


def _options(conf: float, iou: float, max_det: int):
    from nexus.errors import NexusError
    from nexus.vision.postprocess import PostprocessOptions

    try:
        return PostprocessOptions(conf_threshold=conf, iou_threshold=iou, max_detections=max_det)
    except ValueError as error:
        raise NexusError(str(error)) from error


def _boxes_only(detections):
    from nexus.detections import Detections

    return Detections(detections.xyxy, detections.confidence, detections.class_id, data=dict(detections.data))
