"""Describe a dataset: images and objects per split and class, box and image size distributions."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nexus.datasets.images import image_size
from nexus.datasets.yolo import YoloDataset
from nexus.errors import DatasetError, ImageDecodeError

PERCENTILES = (5, 25, 50, 75, 95)


def distribution(values: np.ndarray | list[float]) -> dict[str, float | int | None]:
    """Count, mean, min, max and the :data:`PERCENTILES` of some values (``None`` when empty).

    Example:
        >>> distribution([1, 2, 3, 4])["p50"]
        2.5
    """
    array = np.asarray(values, dtype=np.float64)
    keys = ["mean", "min", *(f"p{p}" for p in PERCENTILES), "max"]
    if array.size == 0:
        return {"count": 0, **dict.fromkeys(keys)}
    numbers = [array.mean(), array.min(), *np.percentile(array, PERCENTILES), array.max()]
    return {"count": int(array.size), **{k: round(float(v), 4) for k, v in zip(keys, numbers, strict=True)}}


@dataclass
class DatasetStats:
    """Per-image and per-object measurements of a dataset; :meth:`to_dict` summarises them.

    Attributes:
        root: the dataset folder.
        names: class id -> name.
        task: ``detect`` or ``segment``.
        image_split, image_width, image_height, image_objects: one entry per image.
        box_split, box_class, box_image, box_width, box_height: one entry per object (pixels);
            ``box_image`` indexes the image arrays.

    Example:
        >>> stats = dataset_stats(YoloDataset.load("data/shapes"))  # doctest: +SKIP
        >>> stats.to_dict()["splits"]["val"]["images"]  # doctest: +SKIP
        60
    """

    root: Path
    names: dict[int, str]
    task: str
    image_split: list[str] = field(default_factory=list)
    image_width: list[int] = field(default_factory=list)
    image_height: list[int] = field(default_factory=list)
    image_objects: list[int] = field(default_factory=list)
    box_split: list[str] = field(default_factory=list)
    box_class: list[int] = field(default_factory=list)
    box_image: list[int] = field(default_factory=list)
    box_width: list[float] = field(default_factory=list)
    box_height: list[float] = field(default_factory=list)

    def class_name(self, class_id: int) -> str:
        return self.names.get(class_id, str(class_id))

    def _classes(self, split: str | None) -> dict[str, dict[str, int]]:
        instances: Counter[int] = Counter()
        images: dict[int, set[int]] = {k: set() for k in self.names}
        for s, cls, image in zip(self.box_split, self.box_class, self.box_image, strict=True):
            if split is None or s == split:
                instances[cls] += 1
                images.setdefault(cls, set()).add(image)
        ids = sorted(set(self.names) | set(instances))
        return {
            self.class_name(k): {"instances": instances[k], "images": len(images.get(k, ()))} for k in ids
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: splits, classes, box and image size distributions, objects per image."""
        splits: dict[str, Any] = {}
        for split in dict.fromkeys(self.image_split):
            objects = [n for s, n in zip(self.image_split, self.image_objects, strict=True) if s == split]
            splits[split] = {
                "images": len(objects),
                "instances": int(sum(objects)),
                "background_images": sum(1 for n in objects if n == 0),
                "classes": self._classes(split),
                "objects_per_image": distribution(objects),
            }
        widths, heights = np.asarray(self.box_width), np.asarray(self.box_height)
        image_area = np.asarray(self.image_width, np.float64) * np.asarray(self.image_height, np.float64)
        relative = (
            widths * heights / image_area[np.asarray(self.box_image, dtype=np.int64)] if len(widths) else []
        )
        sizes = Counter(f"{w}x{h}" for w, h in zip(self.image_width, self.image_height, strict=True))
        return {
            "root": str(self.root),
            "task": self.task,
            "names": {str(k): v for k, v in sorted(self.names.items())},
            "images": len(self.image_split),
            "instances": len(self.box_class),
            "splits": splits,
            "classes": self._classes(None),
            "boxes": {
                "width": distribution(widths),
                "height": distribution(heights),
                "area": distribution(widths * heights),
                "relative_area": distribution(relative),
            },
            "image_sizes": dict(sizes.most_common()),
            "image_width": distribution(self.image_width),
            "image_height": distribution(self.image_height),
            "objects_per_image": {
                **distribution(self.image_objects),
                "histogram": {str(k): v for k, v in sorted(Counter(self.image_objects).items())},
            },
        }


def dataset_stats(dataset: YoloDataset) -> DatasetStats:
    """Measure every image and label of every split (image sizes from headers only).

    Raises:
        DatasetError: an unreadable image or a malformed label row (run ``nexus data validate``).
    """
    stats = DatasetStats(root=dataset.root, names=dict(dataset.names), task=dataset.task)
    for split in dataset.splits:
        for image in dataset.image_paths(split):
            try:
                width, height = image_size(image)
            except ImageDecodeError as error:
                raise DatasetError(f"{error} (run 'nexus data validate')") from error
            rows = dataset.read_rows(image)
            index = len(stats.image_split)
            stats.image_split.append(split)
            stats.image_width.append(width)
            stats.image_height.append(height)
            stats.image_objects.append(len(rows))
            for row in rows:
                x1, y1, x2, y2 = row.xyxy_normalized()
                stats.box_split.append(split)
                stats.box_class.append(row.class_id)
                stats.box_image.append(index)
                stats.box_width.append((x2 - x1) * width)
                stats.box_height.append((y2 - y1) * height)
    return stats


def write_stats_plot(stats: DatasetStats, png_path: str | Path) -> Path:
    """Draw one PNG with the class histogram, objects per image, box sizes and image sizes.

    Uses Matplotlib's Agg canvas directly (no pyplot, no display needed).

    Example:
        >>> write_stats_plot(dataset_stats(ds), "stats.png")  # doctest: +SKIP
        PosixPath('stats.png')
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    png_path = Path(png_path)
    summary = stats.to_dict()
    figure = Figure(figsize=(15, 8.5), dpi=80)
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 3).ravel()

    names = list(summary["classes"])
    bottom = np.zeros(len(names))
    for split, info in summary["splits"].items():
        counts = np.array([info["classes"].get(n, {}).get("instances", 0) for n in names], dtype=float)
        axes[0].bar(names, counts, bottom=bottom, label=split)
        bottom += counts
    axes[0].set_title("instances per class")
    if summary["splits"]:
        axes[0].legend()
    axes[0].tick_params(axis="x", labelrotation=30)

    objects = np.asarray(stats.image_objects)
    top = int(objects.max()) if objects.size else 0
    axes[1].hist(objects, bins=np.arange(top + 2) - 0.5, color="tab:green")
    axes[1].set_title("objects per image")

    axes[2].scatter(
        stats.box_width, stats.box_height, s=4, alpha=0.4, c=stats.box_class, cmap="tab10", vmin=0, vmax=9
    )
    axes[2].set_title("box width vs height (px)")
    axes[2].set_xlabel("width")
    axes[2].set_ylabel("height")

    areas = np.asarray(stats.box_width) * np.asarray(stats.box_height)
    axes[3].hist(np.sqrt(areas), bins=30, color="tab:orange")
    axes[3].set_title("sqrt(box area) (px)")

    axes[4].hist([stats.box_width, stats.box_height], bins=30, label=["width", "height"])
    axes[4].set_title("box width / height (px)")
    axes[4].legend()

    sizes = summary["image_sizes"]
    labels = list(sizes)[:10]
    axes[5].barh(labels, [sizes[k] for k in labels], color="tab:purple")
    axes[5].set_title("image sizes (top 10)")

    figure.suptitle(f"{stats.root.name}: {summary['images']} images, {summary['instances']} objects")
    figure.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png_path, format="png")
    return png_path
