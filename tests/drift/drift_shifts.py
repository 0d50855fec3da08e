"""Shifts applied to copies of a dataset's images (imported by the drift tests and their fixtures)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from nexus.datasets import SynthConfig, synthesize_dataset

IMAGES, IMGSZ = 30, 96


def darken(image: np.ndarray) -> np.ndarray:
    return (image * 0.5).astype(np.uint8)


def blur(image: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(image, (7, 7), 2.0)


def shrink(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)


SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"dark": darken, "blur": blur, "small": shrink}


def synth(root: Path, seed: int) -> Path:
    """30 synthetic images of 96 px (24 train, 6 val)."""
    synthesize_dataset(root, SynthConfig(images=IMAGES, seed=seed, imgsz=IMGSZ, val_fraction=0.2))
    return root


def shifted_copy(source: Path, target: Path, shift: Callable[[np.ndarray], np.ndarray]) -> Path:
    """Copy a dataset (labels are normalized, so they stay valid) and rewrite every image with ``shift``."""
    shutil.copytree(source, target)
    for path in sorted((target / "images").rglob("*.jpg")):
        assert cv2.imwrite(str(path), shift(cv2.imread(str(path))))
    return target
