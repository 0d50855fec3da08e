"""MLflow model registry for exported detectors: register, look up by alias, promote, roll back.

A new version gets the alias ``challenger``; promoting moves ``champion`` to it and keeps the former
champion under ``previous-champion`` so a rollback can restore it. Registration is idempotent: the
same exported model (by content hash) registered twice returns the existing version, so a pipeline
re-run after a crash never leaves a duplicate or half-tagged version.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nexus.errors import RegistryError
from nexus.registry.lineage import Lineage
from nexus.settings import NexusSettings

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
CONTENT_TAG = "nexus.model_sha256"
STATUS_TAG = "nexus.status"
ARTIFACT_PATH = "exported-model"
REPORT_NAME = "evaluation-report.html"


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version of a model.

    Attributes:
        name: registered model name.
        version: MLflow version number as a string (``"3"``).
        source: artifact URI of the exported model folder.
        run_id: MLflow run the version belongs to (its training run).
        aliases: aliases pointing at it (``champion``, ``challenger``...).
        lineage: data, code, runs and metrics it came from.
        tags: all version tags.

    Example:
        >>> info = registry.get(CHAMPION)  # doctest: +SKIP
        >>> info.uri  # doctest: +SKIP
        'models:/nexus-detector/3'
    """

    name: str
    version: str
    source: str
    run_id: str
    aliases: tuple[str, ...]
    lineage: Lineage
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "source": self.source,
            "run_id": self.run_id,
            "aliases": list(self.aliases),
            "status": self.tags.get(STATUS_TAG, ""),
            "lineage": asdict(self.lineage),
        }


def folder_sha256(folder: Path) -> str:
    """Content hash of every file under ``folder`` (names and bytes), independent of timestamps."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


class ModelRegistry:
    """The registered model ``name`` in the MLflow registry of ``settings``.

    Example:
        >>> registry = ModelRegistry(NexusSettings.from_env(), name="nexus-detector")
        >>> version = registry.register(Path("export/"), Lineage(metrics={"mAP50": 0.93}))  # doctest: +SKIP
        >>> registry.promote().aliases  # doctest: +SKIP
        ('champion',)
    """

    def __init__(self, settings: NexusSettings | None = None, name: str = "nexus-detector") -> None:
        if not name or "/" in name or "@" in name:
            raise RegistryError(f"model name {name!r} must be non-empty without '/' or '@'")
        self.settings = settings or NexusSettings.from_env()
        self.name = name
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            uri = str(self.settings.mlflow_tracking_uri)
            if uri.startswith("sqlite:///"):
                Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return self._client

    # --- reading -------------------------------------------------------------------------------------

    def _info(self, version: Any) -> ModelVersionInfo:
        tags = dict(version.tags or {})
        return ModelVersionInfo(
            name=self.name,
            version=str(version.version),
            source=str(version.source),
            run_id=str(version.run_id or ""),
            aliases=tuple(sorted(getattr(version, "aliases", []) or [])),
            lineage=Lineage.from_tags(tags),
            tags=tags,
        )

    def versions(self) -> list[ModelVersionInfo]:
        """All versions, newest first (an empty list when the model was never registered)."""
        found = self.client.search_model_versions(f"name='{self.name}'")
        # search results carry no aliases: read each version once more
        full = (self.client.get_model_version(self.name, v.version) for v in found)
        return sorted((self._info(v) for v in full), key=lambda v: int(v.version), reverse=True)

    def require_registered(self) -> None:
        """Raise when no model of this name was ever registered, naming those that were.

        Raises:
            RegistryError: the name is unknown to the registry (a typo, or nothing registered yet).
        """
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            known = sorted(model.name for model in self.client.search_registered_models(max_results=50))
            raise RegistryError(
                f"no registered model {self.name!r} (registered: {', '.join(known) or 'none yet'}); "
                "pass --model with one of them"
            ) from None

    def get(self, alias_or_version: str) -> ModelVersionInfo | None:
        """The version behind an alias (``champion``) or a version number; ``None`` if there is none."""
        from mlflow.exceptions import MlflowException

        try:
            if alias_or_version.isdigit():
                found = self.client.get_model_version(self.name, alias_or_version)
            else:
                found = self.client.get_model_version_by_alias(self.name, alias_or_version)
        except MlflowException:
            return None
        return self._info(found)

    def require(self, alias_or_version: str) -> ModelVersionInfo:
        found = self.get(alias_or_version)
        if found is None:
            names = ", ".join(f"v{v.version} {list(v.aliases)}" for v in self.versions()) or "none"
            raise RegistryError(
                f"model {self.name!r} has no version or alias {alias_or_version!r} (versions: {names})"
            )
        return found

    def download(self, alias_or_version: str, target: Path) -> Path:
        """Copy the exported model folder of a version into ``target``; returns the folder."""
        import mlflow.artifacts

        info = self.require(alias_or_version)
        target.mkdir(parents=True, exist_ok=True)
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=info.source,
                dst_path=str(target),
                tracking_uri=str(self.settings.mlflow_tracking_uri),
            )
        )

    # --- writing -------------------------------------------------------------------------------------

    def register(
        self,
        model_dir: Path,
        lineage: Lineage,
        *,
        alias: str = CHALLENGER,
        evaluation_report: Path | None = None,
    ) -> ModelVersionInfo:
        """Log ``model_dir`` (an export folder with ``model.onnx``) and register it under ``alias``.

        The files go into the training run (``lineage.training_run_id``) when it exists, else into a new
        ``register`` run. The version is tagged with the lineage and the content hash; registering the
        same content again returns the existing version (and moves ``alias`` to it unless it is
        already the champion). An
        ``evaluation_report`` file is stored beside it in the run and linked from the version's lineage.

        Raises:
            RegistryError: the folder holds no ONNX model, or MLflow refused the registration.
        """
        from mlflow.exceptions import MlflowException

        model_dir = Path(model_dir)
        if not model_dir.is_dir() or not any(model_dir.glob("*.onnx")):
            raise RegistryError("no exported ONNX model in this folder", path=model_dir)
        sha = folder_sha256(model_dir)
        existing = next((v for v in self.versions() if v.tags.get(CONTENT_TAG) == sha), None)
        if existing is not None:
            if existing.tags.get(STATUS_TAG) == "incomplete":
                self.client.delete_model_version(self.name, existing.version)
            else:
                if alias and alias not in existing.aliases and CHAMPION not in existing.aliases:
                    self.client.set_registered_model_alias(self.name, alias, existing.version)
                return self.require(existing.version)
        try:
            run_id = self._run_for(lineage)
            self.client.log_artifacts(run_id, str(model_dir), ARTIFACT_PATH)
            artifact_root = self.client.get_run(run_id).info.artifact_uri
            source = f"{artifact_root}/{ARTIFACT_PATH}"
            if evaluation_report is not None and Path(evaluation_report).is_file():
                with tempfile.TemporaryDirectory() as scratch:
                    named = Path(scratch) / REPORT_NAME
                    shutil.copyfile(evaluation_report, named)
                    self.client.log_artifact(run_id, str(named), "evaluation")
                lineage = replace(lineage, evaluation_report=f"{artifact_root}/evaluation/{REPORT_NAME}")
            self._ensure_registered_model()
            # Marked incomplete until tags and alias are in place: a crash in between is cleaned up.
            created = self.client.create_model_version(
                self.name, source, run_id=run_id, tags={CONTENT_TAG: sha, STATUS_TAG: "incomplete"}
            )
            for key, value in lineage.to_tags().items():
                self.client.set_model_version_tag(self.name, created.version, key, value)
            if alias:
                self.client.set_registered_model_alias(self.name, alias, created.version)
            self.client.set_model_version_tag(self.name, created.version, STATUS_TAG, "registered")
        except MlflowException as error:
            raise RegistryError(f"MLflow refused to register {self.name!r}: {str(error)[:300]}") from error
        return self.require(str(created.version))

    def _run_for(self, lineage: Lineage) -> str:
        from mlflow.exceptions import MlflowException

        if lineage.training_run_id:
            try:
                return self.client.get_run(lineage.training_run_id).info.run_id
            except MlflowException:
                pass
        from nexus.training.tracking import MlflowTracker

        experiment_id = MlflowTracker._experiment_id(
            self.client, self.settings, local=str(self.settings.mlflow_tracking_uri).startswith("sqlite:")
        )
        run = self.client.create_run(experiment_id, run_name="register", tags={"nexus.kind": "register"})
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            try:
                self.client.create_registered_model(self.name, description="NexusAI detector exports")
            except MlflowException:  # created meanwhile by another process
                self.client.get_registered_model(self.name)

    def set_alias(self, alias: str, version: str) -> ModelVersionInfo:
        self.require(version)
        self.client.set_registered_model_alias(self.name, alias, version)
        return self.require(version)

    def promote(self) -> ModelVersionInfo:
        """Make the challenger the champion; the former champion becomes ``previous-champion``.

        Raises:
            RegistryError: there is no challenger.
        """
        challenger = self.require(CHALLENGER)
        champion = self.get(CHAMPION)
        if champion is not None and champion.version != challenger.version:
            self.client.set_registered_model_alias(self.name, PREVIOUS_CHAMPION, champion.version)
        self.client.set_registered_model_alias(self.name, CHAMPION, challenger.version)
        self.client.delete_registered_model_alias(self.name, CHALLENGER)
        self.client.set_model_version_tag(self.name, challenger.version, STATUS_TAG, "champion")
        return self.require(challenger.version)

    def rollback(self) -> ModelVersionInfo:
        """Drop the challenger (during a canary), or else restore the previous champion.

        Returns the version that serves all traffic afterwards.

        Raises:
            RegistryError: there is neither a challenger nor a previous champion.
        """
        challenger = self.get(CHALLENGER)
        if challenger is not None:
            self.client.delete_registered_model_alias(self.name, CHALLENGER)
            self.client.set_model_version_tag(self.name, challenger.version, STATUS_TAG, "rolled-back")
            champion = self.get(CHAMPION)
            if champion is None:
                raise RegistryError(
                    f"rolled back challenger v{challenger.version}; {self.name!r} has no champion"
                )
            return champion
        previous = self.get(PREVIOUS_CHAMPION)
        if previous is None:
            raise RegistryError(
                f"model {self.name!r} has no challenger and no previous champion to roll back to"
            )
        current = self.get(CHAMPION)
        if current is not None:
            self.client.set_model_version_tag(self.name, current.version, STATUS_TAG, "rolled-back")
        self.client.set_registered_model_alias(self.name, CHAMPION, previous.version)
        self.client.delete_registered_model_alias(self.name, PREVIOUS_CHAMPION)
        self.client.set_model_version_tag(self.name, previous.version, STATUS_TAG, "champion")
        return self.require(previous.version)
