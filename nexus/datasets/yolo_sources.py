"""Read YOLO-style exports into samples: Ultralytics folders, flat YOLO, CVAT "YOLO 1.1", Label Studio YOLO.

Each reader returns class names and samples per split (``""`` when the source has no split). Label
rows are checked as they are read: a bad row or a corrupt image stops the import with the file
(and line) named.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nexus.datasets.coco_format import ImageFinder
from nexus.datasets.images import is_image_file, list_images, verify_image
from nexus.datasets.labels import label_path_for, read_label_file
from nexus.datasets.writer import Annotation, Sample
from nexus.datasets.yolo import SPLITS, parse_names, read_yaml_mapping
from nexus.errors import DatasetError, ImageDecodeError

UNSPLIT = ""
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass(frozen=True)
class SourceData:
    """What a reader found: class names and samples per split (``""``: no split given).

    Example:
        >>> SourceData(names={0: "cat"}, splits={"": []}).names
        {0: 'cat'}
    """

    names: dict[int, str]
    splits: dict[str, list[Sample]]


def read_names_file(path: Path) -> dict[int, str]:
    """Class names from a text file with one name per line (``classes.txt``, ``obj.names``).

    Example:
        >>> read_names_file(Path("classes.txt"))  # doctest: +SKIP
        {0: 'circle', 1: 'rectangle'}
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read class names ({error})", path=path) from error
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise DatasetError("no class names in this file", path=path)
    return dict(enumerate(names))


def yolo_sample(image_path: Path, label_path: Path, names: dict[int, str]) -> Sample:
    """Decode an image, read its YOLO label file and turn the rows into pixel annotations.

    Raises:
        DatasetError: the image is corrupt, a row is malformed, or a class id is not in ``names``.
    """
    try:
        width, height = verify_image(image_path.read_bytes(), str(image_path))
    except ImageDecodeError as error:
        raise DatasetError(str(error)) from error
    annotations = []
    for row in read_label_file(label_path):
        if row.class_id not in names:
            raise DatasetError(
                f"line {row.line}: class {row.class_id} is not in the class names (0..{len(names) - 1})",
                path=label_path,
            )
        x1, y1, x2, y2 = row.xyxy_normalized()
        polygon = row.polygon_normalized() * (width, height) if row.is_polygon else None
        annotations.append(
            Annotation(row.class_id, (x1 * width, y1 * height, x2 * width, y2 * height), polygon)
        )
    return Sample(
        image=image_path, file_name=image_path.name, annotations=tuple(annotations), size=(width, height)
    )


def _label_for(image_path: Path) -> Path:
    """``labels/`` twin of an ``images/`` path, else the ``.txt`` next to the image."""
    twin = label_path_for(image_path)
    return twin if twin.is_file() else image_path.with_suffix(".txt")


def _samples(images: Iterable[Path], names: dict[int, str]) -> list[Sample]:
    return [yolo_sample(image, _label_for(image), names) for image in images]


def _listed_images(list_file: Path, base: Path, finder: ImageFinder) -> list[Path]:
    images = []
    for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        candidate = Path(entry)
        found = candidate if candidate.is_absolute() and candidate.is_file() else None
        found = found or (base / entry if (base / entry).is_file() else None) or finder.find(entry)
        if found is None:
            raise DatasetError(f"line {number}: image {entry!r} not found", path=list_file)
        images.append(found)
    return images


def read_ultralytics(yaml_path: Path) -> SourceData:
    """An Ultralytics dataset YAML whose splits are folders, image-list ``.txt`` files or lists of these.

    Raises:
        DatasetError: no names, no train split, a missing folder or list entry, or bad labels.
    """
    data = read_yaml_mapping(yaml_path)
    if "names" not in data:
        raise DatasetError("missing 'names' (class id -> name)", path=yaml_path)
    names = parse_names(data["names"], yaml_path)
    base = yaml_path.parent
    if data.get("path"):
        given = Path(str(data["path"])).expanduser()
        base = given if given.is_absolute() else (yaml_path.parent / given)
        if not base.is_dir():
            raise DatasetError(f"'path: {data['path']}' is not a folder next to the YAML", path=yaml_path)
    finder = ImageFinder(base, [base])
    splits: dict[str, list[Sample]] = {}
    seen: dict[Path, str] = {}
    for split in SPLITS:
        value = data.get(split)
        if not value:
            continue
        images: list[Path] = []
        for entry in value if isinstance(value, list) else [value]:
            target = Path(str(entry)).expanduser()
            target = target if target.is_absolute() else base / target
            if target.is_file() and target.suffix == ".txt":
                images += _listed_images(target, base, finder)
            elif target.is_dir():
                images += list_images(target)
            else:
                raise DatasetError(
                    f"'{split}: {entry}' is neither an images folder nor a .txt list", path=yaml_path
                )
        fresh = [image for image in images if image.resolve() not in seen]
        seen.update({image.resolve(): split for image in fresh})
        splits[split] = _samples(fresh, names)
    if not splits:
        raise DatasetError("no train/val/test entries", path=yaml_path)
    return SourceData(names=names, splits=splits)


def read_flat_yolo(root: Path) -> SourceData:
    """``classes.txt`` (or ``obj.names``) + ``images/`` + ``labels/`` (Label Studio "YOLO" exports too).

    Images in ``images/<split>/`` subfolders named train/val/test keep their split.
    """
    names_file = next((root / n for n in ("classes.txt", "obj.names") if (root / n).is_file()), None)
    if names_file is None:
        raise DatasetError("no classes.txt with the class names", path=root)
    names = read_names_file(names_file)
    image_dir = root / "images"
    if not image_dir.is_dir():
        raise DatasetError("no images/ folder", path=root)
    splits: dict[str, list[Path]] = {}
    for image in list_images(image_dir):
        relative = image.relative_to(image_dir).parts
        split = _SPLIT_ALIASES.get(relative[0].lower(), UNSPLIT) if len(relative) > 1 else UNSPLIT
        splits.setdefault(split, []).append(image)
    if not splits:
        raise DatasetError("no images under images/", path=root)
    return SourceData(
        names=names, splits={split: _samples(images, names) for split, images in splits.items()}
    )


def _read_obj_data(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            entries[key.strip().lower()] = value.strip()
    return entries


def _strip_data_prefix(entry: str) -> str:
    entry = entry.replace("\\", "/").strip()
    return entry[len("data/") :] if entry.startswith("data/") else entry


def read_cvat_yolo(root: Path) -> SourceData:
    """A CVAT "YOLO 1.1" export: ``obj.names``, ``obj.data``, ``train.txt``, ``obj_train_data/``.

    Subsets listed in ``obj.data`` (``train``, ``valid``) keep their split; labels sit next to images.
    """
    names_file = root / "obj.names"
    if not names_file.is_file():
        raise DatasetError("no obj.names (is this a CVAT 'YOLO 1.1' export?)", path=root)
    names = read_names_file(names_file)
    obj_data = _read_obj_data(root / "obj.data") if (root / "obj.data").is_file() else {}
    finder = ImageFinder(root, [root])
    splits: dict[str, list[Sample]] = {}
    for key in ("train", "valid", "val", "test"):
        listed = obj_data.get(key)
        list_file = root / _strip_data_prefix(listed) if listed else root / f"{key}.txt"
        if not list_file.is_file():
            continue
        entries = [
            _strip_data_prefix(e) for e in list_file.read_text(encoding="utf-8").splitlines() if e.strip()
        ]
        images = []
        for entry in entries:
            found = finder.find(entry)
            if found is None:
                raise DatasetError(f"image {entry!r} is listed but not in the export", path=list_file)
            images.append(found)
        splits.setdefault(_SPLIT_ALIASES[key], []).extend(
            yolo_sample(image, image.with_suffix(".txt"), names) for image in images
        )
    if not splits:
        folders = sorted(p for p in root.glob("obj_*_data") if p.is_dir())
        images = [
            p for folder in folders for p in sorted(folder.rglob("*")) if p.is_file() and is_image_file(p)
        ]
        if not images:
            raise DatasetError("no train.txt and no images in obj_*_data/", path=root)
        splits[UNSPLIT] = [yolo_sample(image, image.with_suffix(".txt"), names) for image in images]
    return SourceData(names=names, splits=splits)
