"""One settings object for the whole platform; every environment read lives here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        from nexus.errors import NexusError

        raise NexusError(f"{name}={value!r} must be a positive integer")
    return int(value)


@dataclass(frozen=True)
class NexusSettings:
    """Where the platform keeps its state and which services it talks to.

    Every field has an embedded default (local folders, SQLite); production points them at servers
    through ``NEXUS_*`` environment variables.

    Example:
        >>> settings = NexusSettings.from_env()
        >>> settings.home.name
        '.nexus'
    """

    home: Path = field(default_factory=lambda: Path(".nexus").resolve())
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "nexus"
    device: str = "cpu"
    torch_threads: int | None = field(default_factory=lambda: _env_int("NEXUS_TORCH_THREADS"))
    router_admin_token: str | None = field(
        default_factory=lambda: os.environ.get("NEXUS_ROUTER_ADMIN_TOKEN", "").strip() or None, repr=False
    )

    def __post_init__(self) -> None:
        if self.mlflow_tracking_uri is None:
            object.__setattr__(self, "mlflow_tracking_uri", f"sqlite:///{self.home / 'mlflow.db'}")

    @property
    def ultralytics_config_dir(self) -> Path:
        return self.home / "ultralytics"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlflow-artifacts"

    @classmethod
    def from_env(cls) -> NexusSettings:
        """Build settings from ``NEXUS_HOME``, ``NEXUS_MLFLOW_TRACKING_URI``, ``NEXUS_MLFLOW_EXPERIMENT``,
        ``NEXUS_DEVICE``, ``NEXUS_TORCH_THREADS`` (training threads; all cores by default) and
        ``NEXUS_ROUTER_ADMIN_TOKEN`` (the bearer token the canary router's admin endpoints ask for)."""
        home = Path(_env("NEXUS_HOME", ".nexus")).expanduser().resolve()
        return cls(
            home=home,
            mlflow_tracking_uri=os.environ.get("NEXUS_MLFLOW_TRACKING_URI") or None,
            mlflow_experiment=_env("NEXUS_MLFLOW_EXPERIMENT", "nexus"),
            device=_env("NEXUS_DEVICE", "cpu"),
        )
