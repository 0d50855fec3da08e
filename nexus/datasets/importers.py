"""Import COCO, YOLO, CVAT and Label Studio exports into the canonical YOLO layout.

Formats (``format=``):

| name | what the source folder holds |
|---|---|
| ``coco`` | one or more COCO JSON files (top level or ``annotations/``) and the images |
| ``yolo`` | an Ultralytics data YAML, or flat ``images/`` + ``labels/`` + ``classes.txt`` |
| ``cvat-coco`` | CVAT "COCO 1.0": ``annotations/instances_default.json`` + ``images/`` |
| ``cvat-yolo`` | CVAT "YOLO 1.1": ``obj.names``, ``obj.data``, ``train.txt``, ``obj_train_data/`` |
| ``labelstudio-coco`` | Label Studio "COCO": ``result.json`` + ``images/`` |
| ``labelstudio-yolo`` | Label Studio "YOLO": ``classes.txt``, ``images/``, ``labels/``, ``notes.json`` |

``auto`` tells them apart by these marker files. A source that carries train and val splits keeps
them; otherwise the images are split by ``val_fraction`` with ``seed`` (the same seed, the same split).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nexus.datasets.coco_format import ImageFinder, load_coco_json, read_coco_source
from nexus.datasets.writer import Sample, check_output_dir, write_dataset
from nexus.datasets.yolo import SPLITS, YoloDataset
from nexus.datasets.yolo_sources import (
    UNSPLIT,
    SourceData,
    read_cvat_yolo,
    read_flat_yolo,
    read_ultralytics,
)
from nexus.errors import DatasetError

FORMATS = ("auto", "coco", "yolo", "cvat-coco", "cvat-yolo", "labelstudio-coco", "labelstudio-yolo")
"""Accepted values of ``format``."""


def _is_coco_file(path: Path) -> bool:
    try:
        load_coco_json(path)
    except DatasetError:
        return False
    return True


def _coco_files(folder: Path) -> list[Path]:
    candidates = sorted(folder.glob("*.json")) + sorted((folder / "annotations").glob("*.json"))
    return [p for p in candidates if p.name != "notes.json" and _is_coco_file(p)]


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in [*folder.glob("*.yaml"), *folder.glob("*.yml")] if p.is_file())


def detect_format(source: Path) -> str:
    """Which export ``source`` is, from its marker files.

    Raises:
        DatasetError: nothing recognisable; the message lists what was looked for.

    Example:
        >>> detect_format(Path("cvat_export"))  # doctest: +SKIP
        'cvat-yolo'
    """
    if source.is_file():
        if source.suffix.lower() == ".json":
            return "coco"
        if source.suffix.lower() in (".yaml", ".yml"):
            return "yolo"
        raise DatasetError("expected a folder, a COCO .json or a data .yaml", path=source)
    if (source / "obj.names").is_file() or (source / "obj.data").is_file():
        return "cvat-yolo"
    if (source / "annotations" / "instances_default.json").is_file():
        return "cvat-coco"
    if (source / "result.json").is_file() and _is_coco_file(source / "result.json"):
        return "labelstudio-coco"
    if (source / "notes.json").is_file() and (source / "classes.txt").is_file():
        return "labelstudio-yolo"
    if _yaml_files(source) or ((source / "classes.txt").is_file() and (source / "images").is_dir()):
        return "yolo"
    if _coco_files(source):
        return "coco"
    raise DatasetError(
        "cannot tell the format (no data YAML, classes.txt, obj.names or COCO JSON); pass --format",
        path=source,
    )


def _split_of_json(path: Path) -> str:
    stem = path.stem.lower()
    for token, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if token in stem:
            return split
    return UNSPLIT


def _read_coco_folder(source: Path, format: str) -> SourceData:
    if source.is_file():
        json_files, root = [source], source.parent
        if root.name == "annotations":
            root = root.parent
    else:
        root = source
        if format == "cvat-coco":
            json_files = sorted((root / "annotations").glob("instances_*.json"))
        elif format == "labelstudio-coco":
            json_files = [root / "result.json"] if (root / "result.json").is_file() else []
        else:
            json_files = _coco_files(root)
    if not json_files:
        expected = {"cvat-coco": "annotations/instances_*.json", "labelstudio-coco": "result.json"}
        raise DatasetError(f"no COCO JSON found (expected {expected.get(format, '*.json')})", path=source)
    names: dict[int, str] | None = None
    names_from = json_files[0]
    splits: dict[str, list[Sample]] = {}
    for json_path in json_files:
        split = _split_of_json(json_path) if len(json_files) > 1 else UNSPLIT
        if split in splits:
            raise DatasetError(
                f"several COCO files for split {split or '(none)'}; import them one at a time", path=json_path
            )
        subset = json_path.stem.split("_", 1)[-1]
        bases = [json_path.parent, root, root / "images", root / "images" / subset, root / subset]
        coco = read_coco_source(json_path, ImageFinder(root, bases))
        if names is None:
            names = coco.names
        elif coco.names != names:
            raise DatasetError(f"categories differ from those in {names_from.name}", path=json_path)
        splits[split] = coco.samples
    assert names is not None
    return SourceData(names=names, splits=splits)


def read_source(source: Path, format: str) -> SourceData:
    """Read an export of the given format (``auto`` detects it).

    Raises:
        DatasetError: unknown format, missing source, or a malformed file (named in the message).
    """
    if format not in FORMATS:
        raise DatasetError(f"unknown format {format!r}; use one of: {', '.join(FORMATS)}")
    if not source.exists():
        raise DatasetError("no such file or folder", path=source)
    if format == "auto":
        format = detect_format(source)
    if format in ("coco", "cvat-coco", "labelstudio-coco"):
        return _read_coco_folder(source, format)
    if format == "cvat-yolo":
        return read_cvat_yolo(source if source.is_dir() else source.parent)
    if source.is_file():
        return read_ultralytics(source)
    if format == "yolo":
        yamls = _yaml_files(source)
        if len(yamls) > 1:
            names = ", ".join(p.name for p in yamls)
            raise DatasetError(f"several YAML files ({names}); pass the data YAML itself", path=source)
        if yamls:
            return read_ultralytics(yamls[0])
    return read_flat_yolo(source)


def split_samples(splits: dict[str, list[Sample]], val_fraction: float, seed: int) -> dict[str, list[Sample]]:
    """Keep a source's train/val split, or split its images by ``val_fraction`` with ``seed``.

    Example:
        >>> s = [Sample(image=b"", file_name=f"{i}.jpg") for i in range(10)]
        >>> {k: len(v) for k, v in split_samples({"": s}, 0.2, seed=0).items()}
        {'train': 8, 'val': 2}
    """
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val fraction {val_fraction} must be above 0 and below 1")
    if splits.get("train") and splits.get("val"):
        result = {"train": splits["train"] + splits.get(UNSPLIT, []), "val": splits["val"]}
        if splits.get("test"):
            result["test"] = splits["test"]
        return result
    pool = [s for key in ("train", "val", UNSPLIT) for s in splits.get(key, [])]
    if len(pool) < 2:
        raise DatasetError(f"found {len(pool)} image(s); at least 2 are needed for a train and a val split")
    n_val = min(max(1, round(len(pool) * val_fraction)), len(pool) - 1)
    chosen = set(np.random.default_rng(seed).permutation(len(pool))[:n_val].tolist())
    result = {
        "train": [s for i, s in enumerate(pool) if i not in chosen],
        "val": [s for i, s in enumerate(pool) if i in chosen],
    }
    if splits.get("test"):
        result["test"] = splits["test"]
    return result


def import_dataset(
    source: str | Path,
    out_dir: str | Path,
    format: str = "auto",
    val_fraction: float = 0.2,
    seed: int = 0,
    *,
    overwrite: bool = False,
) -> YoloDataset:
    """Convert an export into the canonical YOLO layout under ``out_dir``.

    The task is ``segment`` when any object has an outline (polygon or mask), else ``detect``.

    Args:
        source: the export's folder (or its COCO JSON / data YAML).
        out_dir: the new dataset's folder; must be new or empty unless ``overwrite``.
        format: one of :data:`FORMATS`.
        val_fraction: share of images for ``val`` when the source has no split.
        seed: seed of that split.
        overwrite: replace the dataset in a non-empty ``out_dir`` (other files are kept).

    Raises:
        DatasetError: unknown format, malformed labels, corrupt images, or a non-empty ``out_dir``;
            the message names the file and the problem. Nothing is written then.

    Example:
        >>> ds = import_dataset("exports/cvat", "data/parts", format="cvat-yolo")  # doctest: +SKIP
        >>> ds.names  # doctest: +SKIP
        {0: 'bolt', 1: 'nut'}
    """
    source = Path(source).expanduser()
    if format not in FORMATS:
        raise DatasetError(f"unknown format {format!r}; use one of: {', '.join(FORMATS)}")
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val fraction {val_fraction} must be above 0 and below 1")
    if not source.exists():
        raise DatasetError("no such file or folder", path=source)
    protect = source if source.is_dir() else source.parent
    check_output_dir(Path(out_dir), overwrite, protect)
    data = read_source(source, format)
    unknown = [s for s in data.splits if s not in (*SPLITS, UNSPLIT)]
    if unknown:  # pragma: no cover - readers only produce known splits
        raise DatasetError(f"unknown split(s): {', '.join(unknown)}", path=source)
    splits = split_samples(data.splits, val_fraction, seed)
    has_outline = any(
        a.polygon is not None for samples in splits.values() for s in samples for a in s.annotations
    )
    task = "segment" if has_outline else "detect"
    return write_dataset(out_dir, data.names, task, splits, overwrite=overwrite, source=protect)
