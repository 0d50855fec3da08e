"""MLflow logging of one training through Ultralytics callbacks (not Ultralytics' own integration).

One MLflow run per training: parameters when it starts, per-epoch losses/metrics/learning rates at
``step=epoch`` (1-based, as in ``results.csv``), the final validation of ``best.pt`` and the
artifacts when it ends. A resumed training reopens the same run; its id is kept in
``<run_dir>/mlflow_run_id.txt``. The tracker holds only strings, so Ultralytics can pickle its
callbacks into DDP workers, where only rank 0 logs.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nexus.errors import NexusError
from nexus.settings import NexusSettings

RUN_ID_FILE = "mlflow_run_id.txt"
ALIASES = {
    "mAP50": "metrics/mAP50(B)",
    "mAP50-95": "metrics/mAP50-95(B)",
    "precision": "metrics/precision(B)",
    "recall": "metrics/recall(B)",
    "mask_mAP50": "metrics/mAP50(M)",
    "mask_mAP50-95": "metrics/mAP50-95(M)",
}
_PLOT_SUFFIXES = (".png", ".jpg", ".jpeg")
_LOG = logging.getLogger(__name__)


def mlflow_key(name: str) -> str:
    """MLflow-safe metric name: ``metrics/mAP50(B)`` -> ``metrics/mAP50_B``.

    Example:
        >>> mlflow_key("metrics/mAP50-95(M)")
        'metrics/mAP50-95_M'
    """
    return re.sub(r"[^/\w.\- :]", "", name.replace("(", "_"))


def with_aliases(metrics: Mapping[str, float]) -> dict[str, float]:
    """Add the plain aliases (``mAP50``, ``mAP50-95``, ``precision``, ``recall``, mask variants).

    Example:
        >>> with_aliases({"metrics/mAP50(B)": 0.5})["mAP50"]
        0.5
    """
    values = dict(metrics)
    values.update({alias: values[key] for alias, key in ALIASES.items() if key in values})
    return values


def _rank() -> int:
    return int(os.environ.get("RANK", "-1"))


def _local_store_dir(tracking_uri: str) -> Path | None:
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).parent
    if tracking_uri.startswith("file:"):
        return Path(tracking_uri.removeprefix("file:").removeprefix("//"))
    if "://" not in tracking_uri:
        return Path(tracking_uri)
    return None


class MlflowTracker:
    """Log one training to one MLflow run; picklable (the client is rebuilt in each process).

    Example:
        >>> tracker = MlflowTracker.start(settings, run_name="train")  # doctest: +SKIP
        >>> for event, callback in tracker.callbacks().items():  # doctest: +SKIP
        ...     yolo.add_callback(event, callback)
    """

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self._client: Any = None
        self._stopped = False

    def __getstate__(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "run_id": self.run_id, "_stopped": self._stopped}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.tracking_uri = state["tracking_uri"]
        self.run_id = state["run_id"]
        self._client = None
        self._stopped = state["_stopped"]

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    @classmethod
    def start(
        cls,
        settings: NexusSettings,
        *,
        run_name: str,
        resume_run_id: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> MlflowTracker:
        """Create a run in ``settings.mlflow_experiment``, or reopen ``resume_run_id``.

        ``parent_run_id`` makes the new run a nested child of that run (tag ``mlflow.parentRunId``);
        ``tags`` are added to (or override) the default ``mlflow.source.name`` / ``nexus.kind`` tags.

        Example:
            >>> MlflowTracker.start(NexusSettings(), run_name="train").run_id  # doctest: +SKIP
            '3f2a...'
        """
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        uri = str(settings.mlflow_tracking_uri)
        store_dir = _local_store_dir(uri)
        if store_dir is not None:
            store_dir.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=uri)
        if resume_run_id:
            try:
                client.get_run(resume_run_id)
            except MlflowException:
                _LOG.warning(
                    "MLflow run %s not found at %s; logging the resumed training to a new run",
                    resume_run_id,
                    uri,
                )
            else:
                client.update_run(resume_run_id, status="RUNNING")
                tracker = cls(uri, resume_run_id)
                tracker._client = client
                return tracker
        experiment_id = cls._experiment_id(client, settings, local=store_dir is not None)
        run_tags = {"mlflow.source.name": "nexus train", "nexus.kind": "training", **(tags or {})}
        if parent_run_id:
            run_tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(experiment_id, run_name=run_name, tags=run_tags)
        tracker = cls(uri, run.info.run_id)
        tracker._client = client
        return tracker

    @staticmethod
    def _experiment_id(client: Any, settings: NexusSettings, *, local: bool) -> str:
        from mlflow.exceptions import MlflowException

        name = settings.mlflow_experiment
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = settings.mlflow_artifacts_dir.as_uri() if local else None
            try:
                return client.create_experiment(name, artifact_location=location)
            except MlflowException:  # created meanwhile by another process
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage != "active":
            raise NexusError(
                f"MLflow experiment {name!r} is deleted; restore it or set NEXUS_MLFLOW_EXPERIMENT "
                "to another name"
            )
        return experiment.experiment_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters once; on a resumed run, changed values go to ``resume.<key>`` tags instead.

        Example:
            >>> tracker.log_params({"epochs": 30})  # doctest: +SKIP
        """
        from mlflow.entities import Param, RunTag

        existing = self.client.get_run(self.run_id).data.params
        new = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in existing]
        changed = [
            RunTag(f"resume.{k}", str(v)[:5000])
            for k, v in params.items()
            if k in existing and existing[k] != str(v)[:6000]
        ]
        if new or changed:
            self.client.log_batch(self.run_id, params=new, tags=changed)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log numeric metrics at ``step`` under MLflow-safe names.

        Example:
            >>> tracker.log_metrics({"metrics/mAP50(B)": 0.5}, step=1)  # doctest: +SKIP
        """
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [
            Metric(mlflow_key(k), float(v), now, step)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        for start in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        """The Ultralytics callbacks to register (``YOLO.add_callback(event, fn)``).

        Example:
            >>> sorted(tracker.callbacks())  # doctest: +SKIP
            ['on_fit_epoch_end', 'on_pretrain_routine_end']
        """
        return {
            "on_pretrain_routine_end": self.on_pretrain_routine_end,
            "on_fit_epoch_end": self.on_fit_epoch_end,
        }

    def on_pretrain_routine_end(self, trainer: Any) -> None:
        """Record the run id in the run folder (so ``resume`` finds the run) and the folder in the run."""
        if _rank() not in (-1, 0):
            return
        save_dir = Path(trainer.save_dir)
        self.write_run_id(save_dir)
        self.client.set_tag(self.run_id, "nexus.run_dir", str(save_dir))

    def on_fit_epoch_end(self, trainer: Any) -> None:
        """Log one epoch: train losses, val losses and metrics, learning rates, epoch time."""
        if _rank() not in (-1, 0) or self._stopped:
            return  # after the last epoch, Ultralytics calls this once more for best.pt's final validation
        metrics: dict[str, float] = {}
        if trainer.tloss is not None:
            metrics.update(trainer.label_loss_items(trainer.tloss, prefix="train"))
        metrics.update(trainer.metrics or {})
        metrics.update(getattr(trainer, "lr", {}) or {})
        if trainer.epoch_time is not None:
            metrics["epoch_time_s"] = float(trainer.epoch_time)
        self.log_metrics(with_aliases(metrics), step=int(trainer.epoch) + 1)
        self._stopped = bool(trainer.stop)

    def write_run_id(self, run_dir: Path) -> None:
        """Write ``mlflow_run_id.txt`` into the run folder."""
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RUN_ID_FILE).write_text(self.run_id + "\n", encoding="utf-8")

    def backfill_epochs(self, results_csv: Path) -> int:
        """Log epochs found in ``results.csv`` but missing from the run (e.g. cut off by a crash).

        Returns the number of epochs logged.
        """
        if not results_csv.is_file():
            return 0
        with results_csv.open(encoding="utf-8") as handle:
            rows = [{k.strip(): v.strip() for k, v in row.items() if k} for row in csv.DictReader(handle)]
        if not rows:
            return 0
        probe = next((k for k in rows[0] if k not in {"epoch", "time"}), None)
        if probe is None:
            return 0
        logged = {m.step for m in self.client.get_metric_history(self.run_id, mlflow_key(probe))}
        count = 0
        for row in rows:
            try:
                step = int(float(row.pop("epoch")))
                row.pop("time", None)
                values = {k: float(v) for k, v in row.items() if v}
            except (KeyError, ValueError):
                continue
            if step not in logged:
                self.log_metrics(with_aliases(values), step=step)
                count += 1
        return count

    def log_artifacts(self, run_dir: Path) -> None:
        """Upload best.pt, results.csv, args.yaml and the plots of a finished run."""
        for name, folder in (("weights/best.pt", "weights"), ("results.csv", None), ("args.yaml", None)):
            path = run_dir / name
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path), artifact_path=folder)
        for plot in sorted(run_dir.iterdir()):
            if plot.is_file() and plot.suffix.lower() in _PLOT_SUFFIXES:
                self.client.log_artifact(self.run_id, str(plot), artifact_path="plots")

    def finish(self, status: str = "FINISHED") -> None:
        """End the run with ``FINISHED``, ``FAILED`` or ``KILLED``."""
        self.client.set_terminated(self.run_id, status=status)


def read_run_id(run_dir: Path) -> str | None:
    """The MLflow run id stored in a run folder, if any.

    Example:
        >>> read_run_id(Path(".nexus/runs/train"))  # doctest: +SKIP
        '3f2a...'
    """
    path = run_dir / RUN_ID_FILE
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8").strip()
    return text or None
