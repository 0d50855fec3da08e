"""Fixtures for training tests: tiny shapes datasets, isolated homes, a shared MLflow DB, a network guard."""

from __future__ import annotations

import ipaddress
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from nexus.settings import NexusSettings
from nexus.training.ultralytics_env import prefer_passive_omp_wait

prefer_passive_omp_wait()  # effective when this conftest loads before torch (pytest tests/training)

SHAPE_NAMES = ("rectangle", "circle", "triangle")


def _polygon(kind: str, cx: float, cy: float, r: float) -> np.ndarray:
    if kind == "rectangle":
        return np.array([[cx - r, cy - r], [cx + r, cy - r], [cx + r, cy + r], [cx - r, cy + r]])
    if kind == "triangle":
        return np.array([[cx, cy - r], [cx + r, cy + r], [cx - r, cy + r]])
    angles = np.linspace(0, 2 * math.pi, 16, endpoint=False)
    return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)


def make_shapes_dataset(
    root: Path,
    *,
    n_train: int = 8,
    n_val: int = 4,
    imgsz: int = 64,
    classes: int = 2,
    task: str = "detect",
    seed: int = 0,
) -> Path:
    """Write ``root/dataset.yaml`` plus images/labels of 1–2 filled shapes per image; return the yaml path.

    Detect labels are ``cls cx cy w h``; segment labels are ``cls x1 y1 x2 y2 ...`` (normalized).

    Example:
        >>> yaml_path = make_shapes_dataset(tmp_path / "shapes")  # doctest: +SKIP
    """
    rng = np.random.default_rng(seed)
    names = SHAPE_NAMES[:classes]
    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = np.full((imgsz, imgsz, 3), rng.integers(0, 60, size=3), dtype=np.uint8)
            rows = []
            for _ in range(int(rng.integers(1, 3))):
                cls = int(rng.integers(0, classes))
                r = float(rng.uniform(imgsz * 0.12, imgsz * 0.22))
                cx, cy = (float(v) for v in rng.uniform(r + 1, imgsz - r - 1, size=2))
                polygon = _polygon(names[cls], cx, cy, r)
                color = tuple(int(c) for c in rng.integers(120, 256, size=3))
                cv2.fillPoly(image, [np.round(polygon).astype(np.int32)], color)
                if task == "segment":
                    coords = " ".join(f"{v / imgsz:.5f}" for v in polygon.reshape(-1))
                    rows.append(f"{cls} {coords}")
                else:
                    (x0, y0), (x1, y1) = polygon.min(axis=0), polygon.max(axis=0)
                    rows.append(
                        f"{cls} {(x0 + x1) / 2 / imgsz:.5f} {(y0 + y1) / 2 / imgsz:.5f} "
                        f"{(x1 - x0) / imgsz:.5f} {(y1 - y0) / imgsz:.5f}"
                    )
            stem = f"{split}_{index:04d}"
            cv2.imwrite(str(root / "images" / split / f"{stem}.png"), image)
            (root / "labels" / split / f"{stem}.txt").write_text("\n".join(rows) + "\n")
    spec = {"train": "images/train", "val": "images/val", "names": dict(enumerate(names)), "task": task}
    yaml_path = root / "dataset.yaml"
    yaml_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return yaml_path


_LOOPBACK_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: Any) -> bool:
    """True for loopback hosts (and for anything that is not an IP/host name, e.g. a Unix socket path)."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return True
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    """Records, and refuses, every attempt to resolve or connect to a non-loopback address."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> NetworkGuard:
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        real_getaddrinfo = socket.getaddrinfo
        real_create_connection = socket.create_connection
        guard = self

        def refuse(what: str) -> None:
            guard.attempts.append(what)
            raise OSError(f"network access blocked by the test: {what}")

        def connect(sock: socket.socket, address: Any) -> Any:
            host = address[0] if isinstance(address, tuple) else None
            if not is_loopback(host):
                refuse(f"connect {address!r}")
            return real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> Any:
            host = address[0] if isinstance(address, tuple) else None
            if not is_loopback(host):
                refuse(f"connect_ex {address!r}")
            return real_connect_ex(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not is_loopback(host):
                refuse(f"getaddrinfo {host!r}")
            return real_getaddrinfo(host, *args, **kwargs)

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
            if not is_loopback(address[0]):
                refuse(f"create_connection {address!r}")
            return real_create_connection(address, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", create_connection)
        return self


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    """Fail the test if anything tried to reach a non-loopback address."""
    guard = NetworkGuard().install(monkeypatch)
    yield guard
    assert guard.attempts == [], f"network access attempted: {guard.attempts}"


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite MLflow store for the session (creating a store costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def settings(tmp_path: Path, mlflow_uri: str) -> NexusSettings:
    """A fresh home per test, sharing the session's MLflow store."""
    return NexusSettings(
        home=tmp_path / "home", mlflow_tracking_uri=mlflow_uri, mlflow_experiment="training-tests"
    )


@pytest.fixture(scope="session")
def detect_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 images of 64 px (8 train / 4 val) with boxes of 2 classes; returns the dataset folder."""
    root = tmp_path_factory.mktemp("shapes-detect")
    make_shapes_dataset(root, n_train=8, n_val=4, imgsz=64, classes=2, task="detect")
    return root


@pytest.fixture(scope="session")
def segment_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 images of 64 px with polygon labels of 2 classes; returns the dataset folder."""
    root = tmp_path_factory.mktemp("shapes-segment")
    make_shapes_dataset(root, n_train=8, n_val=4, imgsz=64, classes=2, task="segment", seed=1)
    return root
