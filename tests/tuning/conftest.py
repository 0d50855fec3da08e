"""Fixtures for tuning tests: one tiny synthetic dataset, one MLflow store, an isolated home per test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nexus.settings import NexusSettings
from nexus.training.ultralytics_env import prefer_passive_omp_wait

prefer_passive_omp_wait()  # effective when this conftest loads before torch (pytest tests/tuning)

TINY = {"epochs": 1, "imgsz": 64, "batch": 8}


@pytest.fixture(scope="session")
def tune_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 synthetic 64 px shape images (13 train / 3 val); returns the dataset folder."""
    from nexus.datasets import SynthConfig, synthesize_dataset

    root = tmp_path_factory.mktemp("tune-data") / "shapes"
    synthesize_dataset(root, SynthConfig(images=16, seed=1, imgsz=64))
    return root


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite MLflow store for the session (creating a store costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_uri: str, request: pytest.FixtureRequest
) -> NexusSettings:
    """NEXUS_HOME in tmp_path, the session's MLflow store and an experiment of this test's own."""
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEXUS_MLFLOW_TRACKING_URI", mlflow_uri)
    experiment = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:80]
    monkeypatch.setenv("NEXUS_MLFLOW_EXPERIMENT", f"tuning-{experiment}")
    return NexusSettings.from_env()
