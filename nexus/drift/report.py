"""The drift report: Evidently over per-image statistics and embeddings, and the drift decision.

Each statistic column gets Evidently's default test for its size and type (K-S p-value up to 1,000
rows, chi-square / Z-test for columns with few distinct values, Wasserstein distance above 1,000
rows). The embeddings get Evidently's domain-classifier test (``ModelDriftMethod``): a classifier
learns to tell reference from current embeddings (standardized by the pooled mean and spread of both
sides) and its held-out ROC AUC is compared with the 95th percentile of the AUCs of random guesses.

Decision: drift when the share of drifted statistic columns reaches ``DriftConfig.drift_share`` or
the embedding test finds drift.
"""

from __future__ import annotations

import html
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nexus.drift.embeddings import ImageEncoder
from nexus.drift.image_stats import STAT_COLUMNS, ImageSet, ImageTable, describe_images
from nexus.errors import DatasetError, NexusError

HTML_NAME, JSON_NAME = "drift_report.html", "drift_summary.json"
EMBEDDING_NAME = "image_embedding"


@dataclass(frozen=True)
class DriftConfig:
    """How drift is tested and decided.

    Attributes:
        drift_share: drift when at least this share of the statistic columns drifted. Image statistics
            come in correlated groups (brightness with the colour means, width with height), so one
            real change moves 2-6 of the 11-14 columns; same-distribution samples of ~25 images drift
            0-1 columns. Evidently's own default, 0.5, misses a resolution change.
        stattest_threshold: per-column threshold (a p-value, or a distance above 1,000 rows);
            ``None`` keeps Evidently's default for each test (0.05 for p-values, 0.1 for distances).
            It must lie in (0, 1): a p-value is at most 1, so 1 or more flags every column.
        embedding_drift: also test the image embeddings (and let them flag drift on their own).
        embedding_auc_threshold: flag embedding drift above this classifier ROC AUC; ``None`` compares
            with the 95th percentile of random guesses (a test that adapts to the sample size).
        min_images: refuse sides with fewer readable images than this.
        confidence: confidence threshold of the model's detections (with a model only).
        max_images: use at most this many images per side, evenly spaced; ``None`` uses all.

    Example:
        >>> DriftConfig(drift_share=0.5).min_images
        5
    """

    drift_share: float = 0.25
    stattest_threshold: float | None = None
    embedding_drift: bool = True
    embedding_auc_threshold: float | None = None
    min_images: int = 5
    confidence: float = 0.25
    max_images: int | None = None

    def __post_init__(self) -> None:
        auc, stattest, most = self.embedding_auc_threshold, self.stattest_threshold, self.max_images
        checks = [
            (0.0 < self.drift_share <= 1.0, f"drift_share={self.drift_share}: set it above 0 and at most 1"),
            (
                stattest is None or 0.0 < stattest < 1.0,
                f"stattest_threshold={stattest}: set it above 0 and below 1 (e.g. 0.05), or None",
            ),
            (auc is None or 0.5 <= auc < 1.0, f"embedding_auc_threshold={auc}: set it in [0.5, 1), or None"),
            (self.min_images >= 2, f"min_images={self.min_images}: set min_images to 2 or more"),
            (0.0 <= self.confidence <= 1.0, f"confidence={self.confidence}: set it between 0 and 1"),
            (most is None or most >= self.min_images, f"max_images={most}: set it to None or >= min_images"),
        ]
        for ok, message in checks:
            if not ok:
                raise NexusError(message)


@dataclass(frozen=True)
class ColumnDrift:
    """Evidently's verdict on one statistic column (``score`` is a p-value or a distance)."""

    column: str
    method: str
    score: float | None
    threshold: float | None
    drifted: bool


@dataclass
class DriftResult:
    """The outcome of ``detect_drift``; ``to_dict()`` is what the JSON summary holds.

    Attributes:
        drifted: the decision (see ``DriftConfig.drift_share``).
        share: share of statistic columns that drifted.
        columns: column name -> its test result.
        embedding_score: the domain classifier's ROC AUC (``None`` when embeddings were not tested).
        embedding_drifted: whether the embedding test found drift.
        embedding_source: ``"pixels"`` or ``"onnx:<tensor>"``.
        reference, current: what was compared (descriptions).
        reference_count, current_count: images used on each side.
        skipped: ``"path: reason"`` of undecodable images (left out, on either side).
        html_path, json_path: the written report and summary, when an output folder was given.
    """

    drifted: bool
    share: float
    drift_share: float
    columns: dict[str, ColumnDrift]
    embedding_score: float | None
    embedding_drifted: bool
    embedding_source: str
    reference: str
    current: str
    reference_count: int
    current_count: int
    skipped: list[str] = field(default_factory=list)
    html_path: Path | None = None
    json_path: Path | None = None

    @property
    def drifted_columns(self) -> list[str]:
        return [name for name, column in self.columns.items() if column.drifted]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["drifted_columns"] = self.drifted_columns
        data["html_path"] = str(self.html_path) if self.html_path else None
        data["json_path"] = str(self.json_path) if self.json_path else None
        return data

    def summary(self) -> str:
        """A few lines for people: the verdict, the drifted columns and the embedding test."""
        embedding = "not tested" if self.embedding_score is None else f"ROC AUC {self.embedding_score:.3f}"
        embedding += " (drift)" if self.embedding_drifted else ""
        lines = [
            f"{'drift detected' if self.drifted else 'no drift'}: {len(self.drifted_columns)} of "
            f"{len(self.columns)} statistics drifted (share {self.share:.2f}, "
            f"threshold {self.drift_share:.2f})",
            f"embeddings [{self.embedding_source}]: {embedding}",
            f"drifted statistics: {', '.join(self.drifted_columns) or 'none'}",
            f"reference: {self.reference_count} images, {self.reference}",
            f"current:   {self.current_count} images, {self.current}",
        ]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} unreadable images (first: {self.skipped[0]})")
        if self.html_path and self.json_path:
            lines += [f"report: {self.html_path}", f"summary: {self.json_path}"]
        return "\n".join(lines)


def _evidently() -> Any:
    """Import Evidently quietly (its import warns about deprecations) with its telemetry off."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import evidently
        import evidently.presets
    return evidently


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _load(
    path: str | Path, split: str | None, encoder: ImageEncoder, config: DriftConfig
) -> tuple[ImageSet, ImageTable]:
    image_set = ImageSet.open(path, split)
    table = describe_images(image_set, encoder, config.max_images)
    if len(table.stats) < config.min_images:
        raise DatasetError(
            f"only {len(table.stats)} readable images in {image_set.description}; drift needs at least "
            f"{config.min_images} (min_images, --min-images)",
            path=path,
        )
    return image_set, table


def _frames(ref: ImageTable, cur: ImageTable, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Statistic columns plus ``emb_NNN`` columns: embeddings standardized by the pooled mean and spread
    of both sides, dimensions that are constant over both sides dropped."""
    pooled = np.concatenate([ref.embeddings, cur.embeddings]).astype(np.float64)
    mean, spread = pooled.mean(axis=0), pooled.std(axis=0)
    keep = np.flatnonzero(spread > 1e-9)
    frames = []
    for table in (ref, cur):
        embedded = (table.embeddings[:, keep] - mean[keep]) / spread[keep]
        names = [f"emb_{i:03d}" for i in keep]
        stats = table.stats[columns].reset_index(drop=True)
        frames.append(pd.concat([stats, pd.DataFrame(embedded, columns=names)], axis=1))
    return frames[0], frames[1]


def detect_drift(
    reference: str | Path,
    current: str | Path,
    *,
    model: str | Path | None = None,
    split: str | None = "train",
    current_split: str | None = None,
    out_dir: str | Path | None = None,
    config: DriftConfig = DriftConfig(),
) -> DriftResult:
    """Compare new images with the training reference; write the Evidently HTML and a JSON summary.

    Args:
        reference: a dataset (folder or YAML) or a folder of images.
        current: a dataset or a folder of images.
        model: a detection model (``.onnx``, ``.pt``, ``.engine``): adds prediction statistics, and an
            ONNX model's backbone features become the embedding.
        split: the reference dataset's split (``None``: all splits).
        current_split: the current dataset's split (``None``: all splits).
        out_dir: where to write ``drift_report.html`` and ``drift_summary.json`` (nothing when ``None``).
        config: thresholds and limits.

    Raises:
        DatasetError: a side is missing, has no images, or fewer readable ones than ``min_images``.
        ModelLoadError: the model cannot be loaded.

    Example:
        >>> result = detect_drift("data/shapes", "incoming/", out_dir="drift")  # doctest: +SKIP
        >>> result.drifted, result.drifted_columns  # doctest: +SKIP
        (True, ['brightness', 'contrast', 'mean_red', 'mean_green', 'mean_blue'])
    """
    encoder = ImageEncoder(model, conf=config.confidence)
    reference_set, ref = _load(reference, split, encoder, config)
    current_set, cur = _load(current, current_split, encoder, config)
    columns = [c for c in STAT_COLUMNS if c in ref.stats and c in cur.stats]
    columns = [c for c in columns if ref.stats[c].notna().any() and cur.stats[c].notna().any()]
    ref_frame, cur_frame = _frames(ref, cur, columns)
    embedding_columns = [c for c in ref_frame.columns if c.startswith("emb_")]
    test_embeddings = config.embedding_drift and bool(embedding_columns)

    evidently = _evidently()
    from evidently.metrics.embeddings import EmbeddingsDrift, ModelDriftMethod
    from evidently.presets import DataDriftPreset

    bootstrap = config.embedding_auc_threshold is None
    method = ModelDriftMethod(bootstrap=bootstrap, threshold=config.embedding_auc_threshold or 0.55)
    metrics: list[Any] = [
        DataDriftPreset(columns=columns, drift_share=config.drift_share, threshold=config.stattest_threshold)
    ]
    if test_embeddings and out_dir is not None:  # its widget (a t-SNE plot) is only wanted in the HTML
        metrics.append(EmbeddingsDrift(embeddings_name=EMBEDDING_NAME, drift_method=method))
    embeddings = {EMBEDDING_NAME: embedding_columns} if test_embeddings else None
    definition = evidently.DataDefinition(numerical_columns=columns, embeddings=embeddings)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # constant columns make Evidently's correlations divide by 0
        snapshot = evidently.Report(metrics, include_tests=True).run(
            current_data=evidently.Dataset.from_pandas(cur_frame, data_definition=definition),
            reference_data=evidently.Dataset.from_pandas(ref_frame, data_definition=definition),
        )
        embedding_score, embedding_drifted = None, False
        if test_embeddings:
            score, flag, _ = method(cur_frame[embedding_columns].copy(), ref_frame[embedding_columns].copy())
            embedding_score, embedding_drifted = float(score), bool(flag)
    report = snapshot.dict()
    column_drift = _column_results(report, columns)
    share = sum(c.drifted for c in column_drift.values()) / max(len(column_drift), 1)
    result = DriftResult(
        drifted=share >= config.drift_share or embedding_drifted,
        share=share,
        drift_share=config.drift_share,
        columns=column_drift,
        embedding_score=embedding_score,
        embedding_drifted=embedding_drifted,
        embedding_source=encoder.source,
        reference=reference_set.description,
        current=current_set.description,
        reference_count=len(ref.stats),
        current_count=len(cur.stats),
        skipped=ref.skipped + cur.skipped,
    )
    if out_dir is not None:
        _write(result, snapshot, report, Path(out_dir))
    return result


def _column_results(report: dict[str, Any], columns: list[str]) -> dict[str, ColumnDrift]:
    """Per-column method, score, threshold and verdict from the ``ValueDrift`` metrics and their tests."""
    failed = {t["metric_config"]["metric_id"] for t in report.get("tests", []) if t.get("status") == "FAIL"}
    results: dict[str, ColumnDrift] = {}
    for metric in report["metrics"]:
        config = metric.get("config", {})
        if config.get("type") != "evidently:metric_v2:ValueDrift" or config.get("column") not in columns:
            continue
        results[config["column"]] = ColumnDrift(
            column=config["column"],
            method=str(config.get("method")),
            score=_finite(metric.get("value")),
            threshold=_finite(config.get("threshold")),
            drifted=metric["id"] in failed,
        )
    return {name: results[name] for name in columns if name in results}


def _write(result: DriftResult, snapshot: Any, report: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    result.html_path, result.json_path = out_dir / HTML_NAME, out_dir / JSON_NAME
    snapshot.save_html(str(result.html_path))
    banner = (
        '<div id="nexus-drift-summary" style="font-family:sans-serif;padding:12px">'
        f"<h2>{'Drift detected' if result.drifted else 'No drift'}</h2>"
        f"<pre>{html.escape(result.summary())}</pre></div>"
    )
    page = result.html_path.read_text(encoding="utf-8")
    result.html_path.write_text(page.replace("<body>", f"<body>{banner}", 1), encoding="utf-8")
    data = result.to_dict()
    data["evidently_tests"] = [
        {"name": t.get("name"), "status": t.get("status"), "description": t.get("description")}
        for t in report.get("tests", [])
    ]
    result.json_path.write_text(json.dumps(data, indent=2, allow_nan=False), encoding="utf-8")
