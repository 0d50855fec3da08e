"""Settings of one predictor process: which model, how to batch, which runtime; validated up front."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL_NAME = "nexus-detector"


@dataclass(frozen=True)
class BatchingConfig:
    """How concurrent requests are gathered into one forward pass.

    Attributes:
        max_batch_size: run as soon as this many images wait (1 turns batching off).
        max_delay_ms: otherwise run when the oldest waiting image has waited this long.
        shards: ONNX Runtime sessions on the CPU, each with its share of the cores. Under load each
            runs its own batch (that many batches at once); a batch that leaves nothing else
            waiting is split across the idle ones. ``None`` picks one per core, at most
            ``max_batch_size`` (see ``resolve_shards``).

    Example:
        >>> BatchingConfig(max_batch_size=16, max_delay_ms=5).max_delay_ms
        5.0
        >>> BatchingConfig(max_batch_size=8).resolve_shards(cpus=2)
        2
    """

    max_batch_size: int = 8
    max_delay_ms: float = 4.0
    shards: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_size <= 1024:
            raise ValueError(
                f"max_batch_size must be within [1, 1024], got {self.max_batch_size}; "
                "pass --max-batch-size 1 to turn batching off"
            )
        if not 0.0 <= float(self.max_delay_ms) <= 10_000:
            raise ValueError(
                f"max_delay_ms must be within [0, 10000], got {self.max_delay_ms}; "
                "a few milliseconds is typical"
            )
        object.__setattr__(self, "max_delay_ms", float(self.max_delay_ms))
        if self.shards is not None and not 1 <= self.shards <= 64:
            raise ValueError(
                f"batch shards must be within [1, 64], got {self.shards}; "
                "omit --batch-shards for one per CPU core"
            )

    def resolve_shards(self, cpus: int) -> int:
        """Shards to use on ``cpus`` cores: the configured count, else ``min(cpus, max_batch_size)``."""
        if self.shards is not None:
            return self.shards
        return max(1, min(cpus, self.max_batch_size))

    def shards_for(self, model_path: Path, device: str, cpus: int) -> int:
        """Shards for this model: the configured count, else one per core for an ONNX model on the
        CPU and 1 for the rest (a GPU runs a whole batch in one pass)."""
        if self.shards is not None:
            return self.shards
        if model_path.suffix.lower() == ".onnx" and device == "cpu":
            return self.resolve_shards(cpus)
        return 1


@dataclass(frozen=True)
class PredictorConfig:
    """Everything one predictor process needs.

    Attributes:
        model_uri: a local path, ``models:/name@alias`` (MLflow) or ``s3://bucket/key``.
        model_name: the name clients use in ``/v1/models/{name}`` and ``/v2/models/{name}``.
        device: ``cpu`` or a CUDA device (``0``, ``cuda:0``).
        imgsz: network input size; the model's own when ``None``.
        batching: dynamic batching settings.
        max_image_pixels: refuse images larger than this (decompression-bomb guard).
        max_images_per_request: refuse requests carrying more images than this.
        warmup: run one dummy batch before reporting ready.
        gpu_decode: decode JPEGs on the GPU (``.pt`` models on CUDA only).
        scaled_jpeg_decode: decode a JPEG at least twice its letterboxed size at 1/2, 1/4 or 1/8
            scale (libjpeg's scaled IDCT; never below the letterboxed size): 1.3-1.8x faster
            decoding; off, every image decodes whole, pixel for pixel as ``Detector.predict``.
        version: label of this model version in responses and metrics (``champion``, ``v3``).

    Example:
        >>> PredictorConfig(model_uri="best.onnx", batching=BatchingConfig(max_batch_size=4)).model_name
        'nexus-detector'
    """

    model_uri: str
    model_name: str = DEFAULT_MODEL_NAME
    device: str = "cpu"
    imgsz: int | None = None
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    max_image_pixels: int = 64_000_000
    max_images_per_request: int = 64
    warmup: bool = True
    gpu_decode: bool = True
    scaled_jpeg_decode: bool = True
    version: str = "v1"

    def __post_init__(self) -> None:
        if not str(self.model_uri).strip():
            raise ValueError("model_uri is empty; pass a model file, models:/name@alias or s3://bucket/key")
        name = self.model_name
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError(
                f"model_name {name!r} must be non-empty and use only letters, digits, '-', '_' or '.'"
            )
        if self.imgsz is not None and self.imgsz <= 0:
            raise ValueError(f"imgsz must be positive, got {self.imgsz}; omit it to use the model's own")
        if self.max_image_pixels < 1:
            raise ValueError(f"max_image_pixels must be at least 1, got {self.max_image_pixels}")
        if self.max_images_per_request < 1:
            raise ValueError(f"max_images_per_request must be at least 1, got {self.max_images_per_request}")
        if not self.version:
            raise ValueError("version label is empty; pass e.g. --version v1")
