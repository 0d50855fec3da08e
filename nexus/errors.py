"""User-facing errors: one line naming the file or value and the problem."""

from __future__ import annotations

from pathlib import Path


class NexusError(Exception):
    """An error caused by the user's input or environment, reported without a traceback.

    The CLI prints ``error: <message>`` and exits with ``exit_code``; services map it to a 4xx.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class DatasetError(NexusError):
    """A dataset is missing, malformed or inconsistent."""


class ModelLoadError(NexusError):
    """A file that should be a model is missing, not a model, or not one we can run."""


class ImageDecodeError(NexusError):
    """Bytes or a file that should be an image could not be decoded."""


class ExportError(NexusError):
    """A model could not be exported to the requested format on this machine."""


class ValidationFailed(NexusError):
    """A check found errors (e.g. ``nexus data validate``); the report was already printed."""

    exit_code = 1


class RegistryError(NexusError):
    """The model registry (MLflow) has no such model, version or alias, or refused a change."""


class DeploymentError(NexusError):
    """A deployment is missing, or its state does not allow the requested change."""
