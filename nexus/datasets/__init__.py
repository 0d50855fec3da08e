"""Datasets: the canonical YOLO layout, synthetic shapes, importers, COCO export, validation, stats.

Example:
    >>> from nexus.datasets import SynthConfig, synthesize_dataset, validate_dataset
    >>> ds = synthesize_dataset("data/shapes", SynthConfig(images=360, seed=0))  # doctest: +SKIP
    >>> validate_dataset(ds.root).ok  # doctest: +SKIP
    True
"""

from nexus.datasets.coco_format import export_coco
from nexus.datasets.importers import FORMATS, detect_format, import_dataset
from nexus.datasets.stats import DatasetStats, dataset_stats, write_stats_plot
from nexus.datasets.synthetic import CLASS_NAMES, SynthConfig, synthesize_dataset
from nexus.datasets.validation import Issue, ValidationReport, validate_dataset
from nexus.datasets.writer import Annotation, Sample, write_dataset
from nexus.datasets.yolo import DATASET_YAML, YoloDataset

__all__ = [
    "CLASS_NAMES",
    "DATASET_YAML",
    "FORMATS",
    "Annotation",
    "DatasetStats",
    "Issue",
    "Sample",
    "SynthConfig",
    "ValidationReport",
    "YoloDataset",
    "dataset_stats",
    "detect_format",
    "export_coco",
    "import_dataset",
    "synthesize_dataset",
    "validate_dataset",
    "write_dataset",
    "write_stats_plot",
]
