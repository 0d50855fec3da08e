"""Resolve a model URI (local path, MLflow ``models:/``, ``s3://``) to a local model file.

Remote sources are fetched only because the user named them (never implicitly), into a cache folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from nexus.errors import ModelLoadError

MODEL_SUFFIXES = (".onnx", ".pt", ".engine")


def _pick_model_file(folder: Path, uri: str, device: str = "cpu") -> Path:
    """The model file inside a folder: ONNX first on CPU; ``.pt``, then engine, then ONNX on a GPU."""
    order = (".onnx", ".engine", ".pt") if device == "cpu" else (".pt", ".engine", ".onnx")
    for suffix in order:
        found = sorted(folder.rglob(f"*{suffix}"))
        if found:
            return found[0]
    raise ModelLoadError(f"no model file ({', '.join(MODEL_SUFFIXES)}) found in {uri}", path=folder)


def _mlflow_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set (KServe's convention), else the platform's registry."""
    from nexus.settings import NexusSettings

    return os.environ.get("MLFLOW_TRACKING_URI") or str(NexusSettings.from_env().mlflow_tracking_uri)


@dataclass(frozen=True)
class ModelSource:
    """Where a served model comes from.

    Attributes:
        uri: what the user passed.
        kind: ``local``, ``mlflow`` or ``s3``.

    Example:
        >>> ModelSource.parse("s3://models/detector/best.onnx").kind
        's3'
        >>> ModelSource.parse("/srv/best.onnx").kind
        'local'
    """

    uri: str
    kind: str

    @classmethod
    def parse(cls, uri: str | Path) -> ModelSource:
        text = str(uri)
        scheme = urlparse(text).scheme
        if scheme == "models" or text.startswith("runs:/"):
            return cls(text, "mlflow")
        if scheme == "s3":
            return cls(text, "s3")
        if scheme in ("", "file"):
            return cls(text.removeprefix("file://"), "local")
        raise ModelLoadError(
            f"unsupported model URI scheme {scheme!r} in {text!r}; use a local path, "
            "models:/name@alias (MLflow) or s3://bucket/key"
        )

    def resolve(self, cache_dir: str | Path | None = None, device: str = "cpu") -> Path:
        """Return a local model file, downloading MLflow/S3 sources into ``cache_dir`` first.

        A folder (a downloaded MLflow model, KServe's ``/mnt/models``) may hold several exports; the
        one that suits ``device`` is picked.

        Raises:
            ModelLoadError: the file is missing or the source holds no model file.
        """
        if self.kind == "local":
            path = Path(self.uri)
            if path.is_dir():
                return _pick_model_file(path, self.uri, device)
            if not path.is_file():
                raise ModelLoadError("no such model file", path=path)
            return path
        cache = Path(
            cache_dir or os.environ.get("NEXUS_MODEL_CACHE", Path.home() / ".cache" / "nexus-models")
        )
        cache.mkdir(parents=True, exist_ok=True)
        if self.kind == "mlflow":
            return self._resolve_mlflow(cache, device)
        return self._resolve_s3(cache, device)

    def _resolve_mlflow(self, cache: Path, device: str) -> Path:
        try:
            import mlflow.artifacts
        except ImportError as error:  # pragma: no cover - depends on the extra
            raise ModelLoadError("MLflow model URIs need the 'train' extra (mlflow)") from error
        target = cache / "mlflow" / self.uri.replace(":/", "_").replace("/", "_").replace("@", "_")
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=self._mlflow_artifact_uri(),
                dst_path=str(target),
                tracking_uri=_mlflow_tracking_uri(),
            )
        except Exception as error:  # mlflow raises many types (MlflowException, OSError)
            raise ModelLoadError(f"cannot fetch {self.uri} from MLflow: {str(error)[:200]}") from error
        local_path = Path(local)
        return local_path if local_path.is_file() else _pick_model_file(local_path, self.uri, device)

    def _mlflow_artifact_uri(self) -> str:
        """``models:/name/3`` and ``models:/name@alias`` → the version's artifact URI, looked up in the
        platform's registry (MLflow alone would look in its default store)."""
        if not self.uri.startswith("models:/"):
            return self.uri
        from mlflow.tracking import MlflowClient

        reference = self.uri.removeprefix("models:/").strip("/")
        uri = _mlflow_tracking_uri()
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        if "@" in reference:
            name, alias = reference.split("@", 1)
            return str(client.get_model_version_by_alias(name, alias).source)
        name, _, version = reference.partition("/")
        if not version:
            raise ModelLoadError(
                f"{self.uri!r} names no version: use models:/NAME/VERSION or models:/NAME@ALIAS"
            )
        return str(client.get_model_version_download_uri(name, version))

    def _resolve_s3(self, cache: Path, device: str) -> Path:
        """Download ``s3://bucket/key`` (a file, or every object under a prefix) with the minio client.

        Endpoint and credentials come from ``S3_ENDPOINT`` (``host:port``), ``AWS_ACCESS_KEY_ID``,
        ``AWS_SECRET_ACCESS_KEY`` and ``S3_SECURE`` (``0``/``1``), as KServe's storage initializer reads.
        """
        from nexus.errors import NexusError
        from nexus.object_store import s3_client_from_env

        parsed = urlparse(self.uri)
        bucket, key = parsed.netloc, parsed.path.lstrip("/")
        try:
            client = s3_client_from_env()
        except NexusError as error:
            raise ModelLoadError(str(error)) from error
        target = cache / "s3" / bucket / key
        try:
            if Path(key).suffix.lower() in MODEL_SUFFIXES:
                client.fget_object(bucket, key, str(target))
                return target
            for item in client.list_objects(bucket, prefix=key.rstrip("/") + "/", recursive=True):
                relative = item.object_name[len(key.rstrip("/")) + 1 :]
                client.fget_object(bucket, item.object_name, str(target / relative))
        except Exception as error:  # minio raises S3Error, urllib3 errors, OSError
            raise ModelLoadError(f"cannot fetch {self.uri}: {str(error)[:200]}") from error
        return _pick_model_file(target, self.uri, device)
