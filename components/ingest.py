"""``ingest``: a dataset folder, a DVC-tracked path, an S3 prefix or a synthesized sample, validated
into a Dataset artifact (tagged with its DVC hash), Metrics and an HTML statistics report."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Metrics, Output

from components.image import NEXUS_IMAGE


@dsl.component(base_image=NEXUS_IMAGE, install_kfp_package=False)
def ingest(
    source: str,
    dataset: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
    synth_images: int = 360,
    synth_imgsz: int = 160,
    seed: int = 0,
    val_fraction: float = 0.2,
):
    """Copy ``source`` into ``dataset``, validate it (errors stop the pipeline) and describe it.

    ``source`` is ``synth`` (synthesize a sample), ``dvc`` (the repository's ``data/sample``, tracked by
    ``data.dvc``), a ``.dvc`` file or a DVC-tracked folder (pulled from the DVC cache or remote when
    missing), ``s3://bucket/prefix`` (``S3_ENDPOINT``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``),
    or a dataset folder: the canonical layout (a ``dataset.yaml``) is copied, any other export (COCO
    JSON, YOLO, CVAT, Label Studio) is imported and, when it has no split, split with ``val_fraction``
    of its images in ``val`` (seeded). ``dataset.metadata["dvc_hash"]`` is the DVC hash of what was
    ingested, so later steps can tag models with the data's version.
    """
    import html
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from nexus.datasets import (
        SynthConfig,
        YoloDataset,
        dataset_stats,
        import_dataset,
        synthesize_dataset,
        validate_dataset,
    )
    from nexus.datasets.versioning import (
        download_s3_prefix,
        dvc_hash,
        resolve_dvc_source,
        restore,
    )
    from nexus.errors import DatasetError
    from nexus.pipelines import save_metrics

    target = Path(dataset.path)
    # Ultralytics' label caches (labels/*.cache) are derived files: the artifact holds the data only.
    derived = shutil.ignore_patterns("*.cache")
    if source == "synth":
        synthesize_dataset(target, SynthConfig(images=synth_images, seed=seed, imgsz=synth_imgsz))
    elif source.startswith("s3://"):
        with tempfile.TemporaryDirectory(prefix="nexus-ingest-") as scratch:
            downloaded = download_s3_prefix(source, Path(scratch) / "dataset")
            shutil.copytree(YoloDataset.load(downloaded).root, target, ignore=derived)
    else:
        tracked = resolve_dvc_source(source)
        if tracked is not None:
            restore(tracked)
            dataset.metadata.update(
                {"dvc_file": str(tracked.dvc_file), "dvc_recorded_hash": tracked.md5 or ""}
            )
            folder = tracked.path
        else:
            folder = Path(source)
        if not folder.exists():
            raise DatasetError("dataset folder not found", path=source)
        if folder.is_dir() and (folder / "dataset.yaml").is_file():
            shutil.copytree(YoloDataset.load(folder).root, target, ignore=derived)
        else:
            import_dataset(folder, target, val_fraction=val_fraction, seed=seed)
    validation = validate_dataset(target)
    if not validation.ok:
        raise DatasetError(
            f"{len(validation.errors)} validation errors, first: {validation.errors[0]}", path=source
        )
    version = dvc_hash(target)
    dataset.metadata.update({"source": source, "dvc_hash": version})
    print(f"ingested {source} -> {target} (dvc hash {version})")
    loaded = YoloDataset.load(target)
    for split in loaded.splits:
        count = len(loaded.image_paths(split))
        if count == 0:
            raise DatasetError(f"split {split!r} is empty", path=source)
        metrics.log_metric(f"images_{split}", count)
    metrics.log_metric("classes", len(loaded.names))
    save_metrics(metrics)
    summary = dataset_stats(loaded).to_dict()
    summary["root"] = source
    rows = "".join(
        f"<tr><td>{html.escape(split)}</td><td>{info['images']}</td><td>{info['instances']}</td>"
        f"<td>{info['background_images']}</td></tr>"
        for split, info in summary["splits"].items()
    )
    classes = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{info['instances']}</td><td>{info['images']}</td></tr>"
        for name, info in summary["classes"].items()
    )
    Path(report.path).write_text(
        f"<html><body><h2>{html.escape(source)}: {summary['images']} images, {summary['instances']} objects"
        f" ({summary['task']})</h2><p>DVC hash <code>{version}</code></p>"
        f"<table><tr><th>split</th><th>images</th><th>objects</th><th>background</th></tr>{rows}</table>"
        f"<table><tr><th>class</th><th>instances</th><th>images</th></tr>{classes}</table>"
        f"<pre>{html.escape(json.dumps(summary, indent=2))}</pre></body></html>",
        encoding="utf-8",
    )
