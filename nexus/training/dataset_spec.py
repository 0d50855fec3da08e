"""Find, check and fingerprint the ``dataset.yaml`` a training reads (no Ultralytics import).

Training only needs to know that a dataset folder is a trainable YOLO dataset before Ultralytics
sees it, so its errors can say what to fix. The full dataset model lives in ``nexus.datasets``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nexus.errors import DatasetError

IMAGE_SUFFIXES = frozenset({".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp", ".dng", ".mpo"})
YAML_NAMES = ("dataset.yaml", "data.yaml", "dataset.yml", "data.yml")
TASKS = ("detect", "segment")
_HASH_IMAGE_BYTES_LIMIT = 512 * 2**20  # above this, images enter the hash by name and size only


@dataclass(frozen=True)
class DatasetSpec:
    """A checked dataset description: its yaml, root folder, class names and splits.

    Example:
        >>> spec = load_dataset_spec(Path("data/shapes"))  # doctest: +SKIP
        >>> spec.names
        {0: 'rectangle', 1: 'circle'}
    """

    yaml_path: Path
    root: Path
    names: dict[int, str]
    splits: dict[str, list[Path]]
    task: str | None


def resolve_dataset_yaml(data: str | Path) -> Path:
    """Return the absolute ``dataset.yaml`` for a dataset folder or a yaml path.

    Example:
        >>> resolve_dataset_yaml("data/shapes")  # doctest: +SKIP
        PosixPath('/abs/data/shapes/dataset.yaml')
    """
    path = Path(data).expanduser()
    if not path.exists():
        raise DatasetError(
            "dataset not found; pass a YOLO dataset folder (holding dataset.yaml) or its yaml file", path=path
        )
    path = path.resolve()
    if path.is_dir():
        for name in YAML_NAMES:
            if (path / name).is_file():
                return path / name
        candidates = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if len(candidates) == 1:
            return candidates[0]
        raise DatasetError(
            f"no dataset.yaml in this folder ({len(candidates)} other yaml files); "
            "pass the dataset folder that holds dataset.yaml, or the yaml file itself",
            path=path,
        )
    if path.suffix.lower() not in {".yaml", ".yml"}:
        raise DatasetError("not a dataset yaml; pass a YOLO dataset folder or its dataset.yaml", path=path)
    return path


def _names(raw: Any, yaml_path: Path) -> dict[int, str]:
    if isinstance(raw, list):
        raw = dict(enumerate(raw))
    if not isinstance(raw, dict) or not raw:
        raise DatasetError(
            "'names' must be a non-empty list or mapping of class id to name, e.g. names: {0: person}",
            path=yaml_path,
        )
    try:
        names = {int(k): str(v) for k, v in raw.items()}
    except (TypeError, ValueError) as error:
        raise DatasetError(f"'names' keys must be class ids 0..n-1 ({error})", path=yaml_path) from error
    if sorted(names) != list(range(len(names))):
        raise DatasetError(
            f"'names' ids must be 0..{len(names) - 1} without gaps, got {sorted(names)}", path=yaml_path
        )
    return names


def _split_sources(entry: Any, root: Path, key: str, yaml_path: Path) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    if not entries or not all(isinstance(e, str) and e.strip() for e in entries):
        raise DatasetError(f"'{key}' must be a folder, an image-list .txt, or a list of them", path=yaml_path)
    sources = []
    for item in entries:
        source = Path(item).expanduser()
        source = source if source.is_absolute() else root / source
        if not source.exists():
            raise DatasetError(
                f"'{key}: {item}' does not exist under {root}; fix the path in the yaml", path=yaml_path
            )
        sources.append(source)
    return sources


def load_dataset_spec(data: str | Path) -> DatasetSpec:
    """Resolve and check a dataset: the yaml parses, names are valid and train/val exist.

    Example:
        >>> load_dataset_spec("data/shapes").yaml_path.name  # doctest: +SKIP
        'dataset.yaml'
    """
    yaml_path = resolve_dataset_yaml(data)
    try:
        content = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DatasetError(f"cannot read the dataset yaml: {error}", path=yaml_path) from error
    if not isinstance(content, dict):
        raise DatasetError("the dataset yaml must be a mapping with train, val and names", path=yaml_path)
    missing = [key for key in ("train", "val", "names") if not content.get(key)]
    if missing:
        raise DatasetError(
            f"the dataset yaml lacks {', '.join(missing)}; it needs train (images folder), "
            "val (images folder) and names (class id -> name)",
            path=yaml_path,
        )
    root = Path(content["path"]).expanduser() if content.get("path") else yaml_path.parent
    root = root if root.is_absolute() else (yaml_path.parent / root).resolve()
    task = content.get("task")
    if task is not None and task not in TASKS:
        raise DatasetError(
            f"'task: {task}' is not trainable here; use one of {', '.join(TASKS)}", path=yaml_path
        )
    splits = {key: _split_sources(content[key], root, key, yaml_path) for key in ("train", "val")}
    return DatasetSpec(yaml_path, root, _names(content["names"], yaml_path), splits, task)


def _split_images(sources: list[Path]) -> list[Path]:
    images: list[Path] = []
    for source in sources:
        if source.is_dir():
            images.extend(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif source.suffix.lower() == ".txt":
            for line in source.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    image = Path(line.strip())
                    images.append(image if image.is_absolute() else (source.parent / image).resolve())
        elif source.suffix.lower() in IMAGE_SUFFIXES:
            images.append(source)
    return sorted(set(images))


def _label_path(image: Path) -> Path:
    parts = list(image.parts)
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def dataset_fingerprint(spec: DatasetSpec) -> tuple[str, int]:
    """SHA-256 over the yaml, every image and every label file; returns (hex digest, image count).

    Images larger than 512 MiB in total enter by relative name and size only, so fingerprinting
    stays cheap on big datasets; labels are always hashed by content.

    Example:
        >>> digest, count = dataset_fingerprint(load_dataset_spec("data/shapes"))  # doctest: +SKIP
    """
    digest = hashlib.sha256(spec.yaml_path.read_bytes())
    images = {split: _split_images(sources) for split, sources in spec.splits.items()}
    total = sum(p.stat().st_size for files in images.values() for p in files if p.is_file())
    by_content = total <= _HASH_IMAGE_BYTES_LIMIT
    count = 0
    for split, files in images.items():
        for image in files:
            if not image.is_file():
                continue
            count += 1
            name = image.relative_to(spec.root) if image.is_relative_to(spec.root) else image
            digest.update(f"{split}:{name}:{image.stat().st_size}".encode())
            if by_content:
                digest.update(hashlib.sha256(image.read_bytes()).digest())
            label = _label_path(image)
            if label.is_file():
                digest.update(hashlib.sha256(label.read_bytes()).digest())
    return digest.hexdigest(), count
