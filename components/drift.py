"""``drift``: Evidently drift report of new images against the training reference; returns the flag."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components.image import NEXUS_IMAGE


@dsl.component(base_image=NEXUS_IMAGE, install_kfp_package=False)
def drift(
    reference: Input[Dataset],
    current_path: str,
    report: Output[HTML],
    summary: Output[Artifact],
    metrics: Output[Metrics],
    model_path: str = "",
    split: str = "train",
    drift_share: float = 0.25,
) -> bool:
    """Compare ``current_path`` (a dataset or a folder of images) with the reference dataset's split.

    ``model_path`` (optional) is a detection model file: prediction statistics are added and an ONNX
    model's backbone features become the embedding. ``split`` is the reference split (``all`` for
    every split). Returns whether drift was found, for a ``dsl.If`` that retrains.
    """
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from nexus.drift import DriftConfig, detect_drift
    from nexus.pipelines import save_metrics

    with tempfile.TemporaryDirectory(prefix="nexus-drift-") as scratch:
        result = detect_drift(
            Path(reference.path),
            current_path,
            model=model_path or None,
            split=None if split == "all" else split,
            out_dir=scratch,
            config=DriftConfig(drift_share=drift_share),
        )
        shutil.copyfile(result.html_path, report.path)
    data = result.to_dict()
    data.update(html_path=report.path, json_path=summary.path)
    Path(summary.path).write_text(json.dumps(data, indent=2), encoding="utf-8")
    metrics.log_metric("drifted", float(result.drifted))
    metrics.log_metric("drifted_share", result.share)
    metrics.log_metric("drifted_columns", float(len(result.drifted_columns)))
    if result.embedding_score is not None:
        metrics.log_metric("embedding_roc_auc", result.embedding_score)
    metrics.log_metric("reference_images", float(result.reference_count))
    metrics.log_metric("current_images", float(result.current_count))
    metrics.log_metric("skipped_images", float(len(result.skipped)))
    print(result.summary())
    save_metrics(metrics)
    return bool(result.drifted)
