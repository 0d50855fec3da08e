"""``export_model``: one call that writes every requested format next to each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nexus.errors import ExportError

FORMATS = ("onnx", "fp16", "int8", "engine")


@dataclass(frozen=True)
class ExportConfig:
    """What to export and where.

    Attributes:
        weights: Ultralytics ``.pt`` weights to export.
        out_dir: folder for the exported files (``model.onnx``, ``model-fp16.onnx``, ...).
        formats: any of ``onnx`` (FP32), ``fp16`` (FP16 ONNX), ``int8`` (INT8 ONNX, needs ``data``),
            ``engine`` (TensorRT, needs TensorRT and a GPU).
        imgsz: default input size recorded in the model; the training size when omitted.
        data: a dataset folder whose images calibrate INT8 quantization.
        calibration_images: how many images to calibrate with.

    Example:
        >>> ExportConfig(weights=Path("best.pt"), out_dir=Path("export"), formats=("onnx", "int8"),
        ...              data=Path("data/sample")).formats
        ('onnx', 'int8')
    """

    weights: Path
    out_dir: Path
    formats: tuple[str, ...] = ("onnx",)
    imgsz: int | None = None
    data: Path | None = None
    calibration_images: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", Path(self.weights))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        formats = tuple(dict.fromkeys(f.strip().lower() for f in self.formats))
        unknown = [f for f in formats if f not in FORMATS]
        if unknown or not formats:
            raise ExportError(
                f"unknown export format(s) {unknown or formats}; choose from {', '.join(FORMATS)}"
            )
        object.__setattr__(self, "formats", formats)
        if "int8" in formats and self.data is None:
            raise ExportError("INT8 export needs calibration images: pass --data DATASET_DIR")
        if self.imgsz is not None and self.imgsz <= 0:
            raise ExportError(f"imgsz must be positive, got {self.imgsz}")
        if self.calibration_images < 1:
            raise ExportError(f"calibration_images must be at least 1, got {self.calibration_images}")


@dataclass
class ExportResult:
    """Paths of the exported files by format."""

    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, str]:
        return {name: str(path) for name, path in self.files.items()}


def _calibration_images(data: Path, limit: int) -> list[Path]:
    from nexus.datasets import YoloDataset

    dataset = YoloDataset.load(data)
    split = "train" if "train" in dataset.splits else next(iter(dataset.splits))
    images = dataset.image_paths(split)
    if not images:
        raise ExportError(f"dataset split {split!r} has no images to calibrate with", path=data)
    step = max(1, len(images) // limit)
    return images[::step][:limit]


def export_model(config: ExportConfig) -> ExportResult:
    """Export ``config.weights`` to every format in ``config.formats``.

    The FP32 ONNX model is always written first: the other formats derive from it.
    """
    from nexus.export.onnx_export import convert_onnx_fp16, export_onnx

    if "engine" in config.formats:
        from nexus.export.tensorrt_engine import current_stamp

        current_stamp()  # fail fast, before the ONNX export, when TensorRT or a GPU is missing
    calibration = None
    if "int8" in config.formats:  # a bad dataset fails before anything in out_dir is replaced
        assert config.data is not None
        calibration = _calibration_images(config.data, config.calibration_images)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult()
    onnx_path = export_onnx(config.weights, config.out_dir / "model.onnx", imgsz=config.imgsz)
    result.files["onnx"] = onnx_path
    if "fp16" in config.formats:
        result.files["fp16"] = convert_onnx_fp16(onnx_path, config.out_dir / "model-fp16.onnx")
    if calibration is not None:
        from nexus.export.quantize import quantize_onnx_int8

        result.files["int8"] = quantize_onnx_int8(onnx_path, config.out_dir / "model-int8.onnx", calibration)
    if "engine" in config.formats:
        from nexus.export.tensorrt_engine import build_tensorrt_engine

        result.files["engine"] = build_tensorrt_engine(onnx_path, config.out_dir / "model.engine")
    return result
