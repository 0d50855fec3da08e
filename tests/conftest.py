"""Shared fixtures: a generated dataset and tiny models trained on it once per test session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
# Idle OpenMP threads spin by default and starve the other pytest-xdist worker on a 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("NEXUS_TORCH_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _offline_before_collection() -> None:
    """Test modules import Ultralytics at collection: point its settings at a scratch home first."""
    from nexus.offline import ensure_offline
    from nexus.settings import NexusSettings

    home = Path(os.environ.get("NEXUS_TEST_BOOT_HOME") or tempfile.mkdtemp(prefix="nexus-test-home-"))
    ensure_offline(NexusSettings(home=home))


_offline_before_collection()
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    """A NEXUS_HOME for the whole session, so Ultralytics settings never touch ~/.config."""
    home = tmp_path_factory.mktemp("nexus-home")
    os.environ["NEXUS_HOME"] = str(home)
    from nexus.offline import ensure_offline
    from nexus.settings import NexusSettings

    ensure_offline(NexusSettings(home=home))
    return home


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    """A folder shared by all pytest-xdist workers of this run (built once, under a file lock)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    shared = root / "shared-fixtures"
    shared.mkdir(exist_ok=True)
    return shared


def build_once(shared: Path, name: str, build) -> Path:
    """Run ``build(target)`` once per test run; other workers wait on the lock and reuse the result."""
    from filelock import FileLock

    target = shared / name
    done = shared / f"{name}.done"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            result = build(target)
            done.write_text(str(result))
    return Path(done.read_text())


@pytest.fixture(scope="session")
def sample_dataset(shared_dir, session_home) -> Path:
    """64 synthetic images (96 px, 3 shape classes) in the canonical layout."""
    from nexus.datasets import SynthConfig, synthesize_dataset

    def build(target: Path) -> Path:
        synthesize_dataset(target, SynthConfig(images=64, seed=3, imgsz=96, val_fraction=0.25))
        return target

    return build_once(shared_dir, "shapes", build)


# Ultralytics' warm-up lasts at least 100 steps, longer than a short run on 48 images, and mosaics of
# 96-px images shrink the shapes: without both, 80 epochs (about a minute on a core) give class
# scores around 0.3 on the shapes (mAP50 about 0.15), where 16 epochs with them stayed near 0.004 on
# every image, and a test comparing two inference paths passed on outputs that ignored the image.
FIXTURE_EPOCHS = 80


def _trained(shared: Path, dataset: Path, model: str, name: str) -> Path:
    from nexus.settings import NexusSettings
    from nexus.training import TrainConfig, train_model

    def build(target: Path) -> Path:
        settings = NexusSettings(home=target, mlflow_tracking_uri=f"sqlite:///{target / 'mlflow.db'}")
        config = TrainConfig(
            data=dataset,
            model=model,
            epochs=FIXTURE_EPOCHS,
            imgsz=96,
            batch=8,
            name=name,
            seed=0,
            # no warm-up and no mosaics: see FIXTURE_EPOCHS. Ultralytics' optimizer step per 64 images
            # (not the library's 16): the tests built on this model (drift embeddings, detection
            # counts on video) were calibrated on what this recipe gives.
            extra={"val": False, "plots": False, "warmup_epochs": 0, "mosaic": 0, "nbs": 64},
        )
        return train_model(config, settings=settings, progress=False).best_weights

    return build_once(shared, name, build)


@pytest.fixture(scope="session")
def detect_weights(shared_dir, sample_dataset, session_home) -> Path:
    """YOLOv8n trained from scratch until its detections follow the image (tests/test_fixture_models.py)."""
    return _trained(shared_dir, sample_dataset, "yolov8n.yaml", "fixture-detect-v2")


@pytest.fixture(scope="session")
def segment_weights(shared_dir, sample_dataset, session_home) -> Path:
    return _trained(shared_dir, sample_dataset, "yolov8n-seg.yaml", "fixture-segment-v2")


@pytest.fixture(scope="session")
def detect_onnx(shared_dir, detect_weights) -> Path:
    from nexus.export.onnx_export import export_onnx

    return build_once(shared_dir, "detect.onnx", lambda target: export_onnx(detect_weights, target))


@pytest.fixture(scope="session")
def segment_onnx(shared_dir, segment_weights) -> Path:
    from nexus.export.onnx_export import export_onnx

    return build_once(shared_dir, "segment.onnx", lambda target: export_onnx(segment_weights, target))


@pytest.fixture(scope="session")
def val_images(sample_dataset) -> list[Path]:
    from nexus.datasets import YoloDataset

    return YoloDataset.load(sample_dataset).image_paths("val")


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` where no CUDA device is visible (never fake them)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is visible on this machine")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not keywords: a test id may say "gpu"
            item.add_marker(skip)
