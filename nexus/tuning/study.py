"""``tune``: an Optuna study whose trials are short ``train_model`` runs, nested in one MLflow parent run.

Each trial draws hyperparameters from the search space, trains with them (validating every epoch)
and reports the metric of each epoch to Optuna; a trial the pruner stops ends its training after that
epoch (``trainer.stop``, as an early stop), is recorded as PRUNED and its MLflow run is closed
FINISHED with the tag ``optuna.trial.state=PRUNED``. The study lives in a storage (an Optuna journal
file under ``NEXUS_HOME`` by default), so a later ``tune`` with the same study name continues it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nexus.errors import NexusError
from nexus.settings import NexusSettings
from nexus.training import TrainConfig, train_model
from nexus.training.tracking import MlflowTracker, with_aliases
from nexus.training.trainer import check_devices
from nexus.tuning.config import TuneConfig, TuneResult
from nexus.tuning.space import TuneConfigError, suggest

DEFAULT_STORAGE_FILE = Path("tuning") / "optuna.journal"
_SQLITE_SUFFIXES = frozenset({".db", ".sqlite", ".sqlite3"})


def storage_location(config: TuneConfig, settings: NexusSettings) -> str:
    """Where the study is kept: a journal/SQLite file path or a database URL.

    Example:
        >>> storage_location(TuneConfig(data=Path("data/shapes")), NexusSettings())  # doctest: +SKIP
        '/abs/.nexus/tuning/optuna.journal'
    """
    if config.storage is None:
        return str(settings.home / DEFAULT_STORAGE_FILE)
    return str(config.storage)


def open_storage(location: str) -> Any:
    """Open an Optuna storage: a database URL, a SQLite file (``.db``/``.sqlite``) or a journal file.

    Example:
        >>> open_storage("/tmp/studies/optuna.journal")  # doctest: +SKIP
        <optuna.storages.journal._storage.JournalStorage object at ...>
    """
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        if "://" in location:
            return RDBStorage(location)
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() in _SQLITE_SUFFIXES:
            return RDBStorage(f"sqlite:///{path}")
        return JournalStorage(JournalFileBackend(str(path)))
    except (OSError, ValueError, ImportError) as error:
        raise NexusError(f"cannot open the study storage {location!r}: {error}") from error


def _pruner(config: TuneConfig) -> Any:
    import optuna

    if not isinstance(config.pruner, str):
        return config.pruner
    if config.pruner == "none":
        return optuna.pruners.NopPruner()
    # Steps are 1-based epochs; Optuna prunes from step == n_warmup_steps on.
    return optuna.pruners.MedianPruner(
        n_startup_trials=config.pruner_startup_trials, n_warmup_steps=config.pruner_warmup_epochs + 1
    )


class EpochReporter:
    """Ultralytics ``on_fit_epoch_end`` callback: report the epoch's metric, stop the trial if pruned.

    Reports ``metric`` at step ``epoch + 1``; when ``trial.should_prune()``, sets ``trainer.stop``
    so Ultralytics saves the epoch and ends the training as an early stop would. Ignores the extra
    call Ultralytics makes for the final validation of ``best.pt``.

    Example:
        >>> reporter = EpochReporter(trial, "mAP50-95")  # doctest: +SKIP
        >>> train_model(config, callbacks={"on_fit_epoch_end": reporter})  # doctest: +SKIP
    """

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.pruned = False
        self.epochs = 0
        self._done = False

    def __call__(self, trainer: Any) -> None:
        if self._done:
            return
        metrics = with_aliases(trainer.metrics or {})
        if self.metric not in metrics:
            reported = ", ".join(sorted(k for k in metrics if "/" not in k)) or "none"
            raise NexusError(
                f"metric={self.metric!r} is not reported by this model's validation (it reports {reported}); "
                "pass one of those as the metric"
            )
        self.epochs = int(trainer.epoch) + 1
        self.trial.report(float(metrics[self.metric]), step=self.epochs)
        if self.trial.should_prune():
            self.pruned = True
            trainer.stop = True
        self._done = bool(trainer.stop)


@contextlib.contextmanager
def _optuna_verbosity(progress: bool) -> Iterator[None]:
    import optuna

    previous = optuna.logging.get_verbosity()
    # Quiet: no per-trial lines, and no traceback of a failing trial (its error is raised anyway).
    optuna.logging.set_verbosity(logging.INFO if progress else logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


class _Objective:
    def __init__(
        self, config: TuneConfig, settings: NexusSettings, parent_run_id: str, progress: bool
    ) -> None:
        self.config = config
        self.settings = settings
        self.parent_run_id = parent_run_id
        self.progress = progress
        self.project = settings.home / "runs" / "tune" / config.study_name

    def __call__(self, trial: Any) -> float:
        import optuna

        config = self.config
        params = {name: suggest(trial, name, spec) for name, spec in config.search_space.items()}
        train_config = TrainConfig(
            data=config.data,
            model=config.architecture,
            epochs=config.epochs,
            imgsz=config.imgsz,
            batch=config.batch,
            device=config.device,
            seed=config.seed,
            name=f"trial-{trial.number}",
            project=self.project,
            extra={**config.extra, **params, "val": True},  # every epoch validated: the pruner needs it
        )
        reporter = EpochReporter(trial, config.metric)
        tags = {
            "mlflow.source.name": "nexus tune",
            "nexus.kind": "tuning-trial",
            "optuna.study_name": config.study_name,
            "optuna.trial.number": str(trial.number),
        }
        result = train_model(
            train_config,
            self.settings,
            progress=self.progress,
            callbacks={"on_fit_epoch_end": reporter},
            parent_run_id=self.parent_run_id,
            run_tags=tags,
        )
        trial.set_user_attr("mlflow_run_id", result.mlflow_run_id)
        trial.set_user_attr("run_dir", str(result.run_dir))
        trial.set_user_attr("epochs_completed", result.epochs_completed)
        state = "PRUNED" if reporter.pruned else "COMPLETE"
        if result.mlflow_run_id:
            MlflowTracker(str(self.settings.mlflow_tracking_uri), result.mlflow_run_id).client.set_tag(
                result.mlflow_run_id, "optuna.trial.state", state
            )
        if reporter.pruned:
            raise optuna.TrialPruned(f"pruned after epoch {reporter.epochs} of {config.epochs}")
        return float(result.metrics[config.metric])


# Settings that make trial values comparable: a continued study must keep them.
_SETUP_KEYS = ("data", "architecture", "epochs", "imgsz", "metric")


def _check_same_setup(study: Any, config: TuneConfig, location: str) -> None:
    setup = {key: str(getattr(config, key)) for key in _SETUP_KEYS}
    recorded = study.user_attrs.get("nexus.setup")
    if recorded is None:
        study.set_user_attr("nexus.setup", setup)
        return
    changed = [key for key in _SETUP_KEYS if key in recorded and recorded[key] != setup[key]]
    if changed:
        details = ", ".join(f"{key}={recorded[key]!r} there, {setup[key]!r} now" for key in changed)
        raise TuneConfigError(
            f"study {config.study_name!r} in {location} was run with other settings ({details}); its trial "
            "values would not compare: pass the same settings to continue it, or another study_name"
        )


def _result(study: Any, config: TuneConfig, location: str, run_id: str | None, ran: int) -> TuneResult:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    params = {**config.defaults(), **(best.params if best else {})}
    return TuneResult(
        best_params={k: v for k, v in params.items() if k in config.search_space},
        best_value=float(best.value) if best else None,
        best_trial=best.number if best else None,
        metric=config.metric,
        n_complete=len(complete),
        n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials),
        trials_run=ran,
        study_name=config.study_name,
        storage=location,
        mlflow_parent_run_id=run_id,
    )


def tune(config: TuneConfig, settings: NexusSettings | None = None, progress: bool = True) -> TuneResult:
    """Run ``config.trials`` trials of the study (creating or continuing it) and return the best params.

    With ``trials == 0`` nothing is trained, opened or logged: the result holds Ultralytics'
    defaults for the searched arguments. Otherwise one MLflow parent run (tag ``nexus.kind=tuning``)
    gets every trial's training as a nested child run and, at the end, the best params
    (``best.<name>``) and value (``best/<metric>``). A failing trial fails the study (the error is
    raised; the parent run ends FAILED); earlier trials stay in the storage.

    Example:
        >>> result = tune(TuneConfig(data=Path("data/shapes"), trials=10, epochs=5))  # doctest: +SKIP
        >>> result.best_params["lr0"]
        0.0042
    """
    settings = settings or NexusSettings.from_env()
    if config.trials == 0:
        return TuneResult(
            best_params=config.defaults(),
            best_value=None,
            best_trial=None,
            metric=config.metric,
            n_complete=0,
            n_pruned=0,
            n_failed=0,
            trials_run=0,
            study_name=config.study_name,
            storage=None,
            mlflow_parent_run_id=None,
        )
    import optuna

    check_devices(config.device)  # before the study and its MLflow run exist
    location = storage_location(config, settings)
    storage = open_storage(location)
    with _optuna_verbosity(progress):
        study = optuna.create_study(
            storage=storage,
            study_name=config.study_name,
            direction="maximize",
            pruner=_pruner(config),
            load_if_exists=True,
        )
        if study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise NexusError(
                f"study {config.study_name!r} in {location} minimizes; pass another study_name or storage"
            )
        _check_same_setup(study, config, location)
        # A continued study must not replay the random draws of its first trials: offset the seed.
        study.sampler = optuna.samplers.TPESampler(seed=config.seed + len(study.trials))
        before = len(study.trials)
        tracker = MlflowTracker.start(
            settings,
            run_name=config.study_name,
            tags={
                "mlflow.source.name": "nexus tune",
                "nexus.kind": "tuning",
                "optuna.study_name": config.study_name,
            },
        )
        try:
            tracker.log_params({**config.params(), "storage": location, "trials_before": before})
            study.optimize(_Objective(config, settings, tracker.run_id, progress), n_trials=config.trials)
            result = _result(study, config, location, tracker.run_id, len(study.trials) - before)
            tracker.log_metrics(
                {
                    "n_complete": result.n_complete,
                    "n_pruned": result.n_pruned,
                    "n_failed": result.n_failed,
                    **({f"best/{config.metric}": result.best_value} if result.best_value is not None else {}),
                },
                step=len(study.trials),
            )
            if result.best_trial is not None:
                tracker.log_params({f"best.{k}": v for k, v in result.best_params.items()})
                best_run = study.trials[result.best_trial].user_attrs.get("mlflow_run_id")
                tracker.client.set_tag(tracker.run_id, "nexus.best_trial", str(result.best_trial))
                if best_run:
                    tracker.client.set_tag(tracker.run_id, "nexus.best_run_id", best_run)
        except BaseException as error:
            tracker.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
            raise
        tracker.finish("FINISHED")
    return result
