"""Drift fixtures: small synthetic datasets from one generator, and shifted copies made with OpenCV."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from drift_shifts import SHIFTS, shifted_copy, synth


@pytest.fixture(scope="session")
def drift_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``reference`` (seed 1), ``same`` (seed 2, same generator) and ``dark``/``blur``/``small`` copies
    of ``same``; 30 images of 96 px each (24 train, 6 val)."""
    root = tmp_path_factory.mktemp("drift-data")
    data = {"reference": synth(root / "reference", 1), "same": synth(root / "same", 2)}
    for name, shift in SHIFTS.items():
        data[name] = shifted_copy(data["same"], root / name, shift)
    return data


@pytest.fixture(scope="session")
def image_folder(drift_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``same`` dataset's images as a plain folder (no YAML, no labels)."""
    folder = tmp_path_factory.mktemp("plain") / "incoming"
    folder.mkdir()
    for path in sorted((drift_data["same"] / "images").rglob("*.jpg")):
        shutil.copyfile(path, folder / path.name)
    return folder
