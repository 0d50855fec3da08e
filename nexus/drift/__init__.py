"""Image-data drift: per-image statistics and embeddings, compared with Evidently against a reference.

Example:
    >>> from nexus.drift import DriftConfig, detect_drift
    >>> result = detect_drift("data/shapes", "incoming/", out_dir="drift")  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    drift detected: 6 of 11 statistics drifted (share 0.55, threshold 0.25)
    ...
"""

from nexus.drift.embeddings import ImageEncoder, OnnxFeatures, feature_tensor_name, pixel_embedding
from nexus.drift.image_stats import (
    STAT_COLUMNS,
    ImageSet,
    ImageTable,
    box_statistics,
    describe_images,
    pixel_statistics,
    prediction_statistics,
)
from nexus.drift.report import ColumnDrift, DriftConfig, DriftResult, detect_drift

__all__ = [
    "STAT_COLUMNS",
    "ColumnDrift",
    "DriftConfig",
    "DriftResult",
    "ImageEncoder",
    "ImageSet",
    "ImageTable",
    "OnnxFeatures",
    "box_statistics",
    "describe_images",
    "detect_drift",
    "feature_tensor_name",
    "pixel_embedding",
    "pixel_statistics",
    "prediction_statistics",
]
