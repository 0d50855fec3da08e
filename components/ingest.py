"""``ingest``: a dataset folder (or a synthesized sample) validated into a Dataset artifact."""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from components.image import NEXUS_IMAGE


@dsl.component(base_image=NEXUS_IMAGE)
def ingest(
    source: str,
    dataset: Output[Dataset],
    metrics: Output[Metrics],
    synth_images: int = 360,
    synth_imgsz: int = 160,
    seed: int = 0,
):
    """Copy ``source`` (a canonical dataset folder), or synthesize one when ``source`` is ``synth``,
    validate it (errors stop the pipeline) and log image counts."""
    import shutil
    from pathlib import Path

    from nexus.datasets import SynthConfig, YoloDataset, synthesize_dataset, validate_dataset
    from nexus.errors import DatasetError

    target = Path(dataset.path)
    if source == "synth":
        synthesize_dataset(target, SynthConfig(images=synth_images, seed=seed, imgsz=synth_imgsz))
    else:
        if not Path(source).is_dir():
            raise DatasetError("dataset folder not found", path=source)
        shutil.copytree(YoloDataset.load(source).root, target)
    report = validate_dataset(target)
    if not report.ok:
        raise DatasetError(f"{len(report.errors)} validation errors, first: {report.errors[0]}", path=source)
    loaded = YoloDataset.load(target)
    for split in loaded.splits:
        count = len(loaded.image_paths(split))
        if count == 0:
            raise DatasetError(f"split {split!r} is empty", path=source)
        metrics.log_metric(f"images_{split}", count)
    metrics.log_metric("classes", len(loaded.names))
