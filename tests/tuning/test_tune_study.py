"""Tiny real studies (64 px, 16 images, 1-3 epochs a trial): best params, nested runs, pruning, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from nexus.settings import NexusSettings
from nexus.tuning import Choice, FloatRange, IntRange, TuneConfig, TuneResult, tune
from nexus.tuning.space import contains

TINY = {"imgsz": 64, "batch": 8}


def _client(settings: NexusSettings) -> MlflowClient:
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


def _children(settings: NexusSettings, parent_id: str) -> list:
    client = _client(settings)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    runs = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    return sorted(runs, key=lambda run: int(run.data.tags["optuna.trial.number"]))


def _load_study(settings: NexusSettings, name: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(settings.home / "tuning" / "optuna.journal"))
    )
    return optuna.load_study(study_name=name, storage=storage)


def test_zero_trials_returns_the_defaults_without_training(tune_dataset, settings):
    from ultralytics.cfg import DEFAULT_CFG_DICT

    result = tune(TuneConfig(data=tune_dataset, trials=0, **TINY), progress=False)

    assert result.best_params == {
        name: DEFAULT_CFG_DICT[name] for name in TuneConfig(data=tune_dataset).search_space
    }
    assert result.best_params["lr0"] == 0.01 and result.best_params["momentum"] == 0.937
    assert (result.best_value, result.best_trial, result.mlflow_parent_run_id) == (None, None, None)
    assert (result.n_complete, result.n_pruned, result.trials_run) == (0, 0, 0)
    assert not settings.home.exists()  # no study journal, no run folders
    assert _client(settings).get_experiment_by_name(settings.mlflow_experiment) is None  # nothing logged


@pytest.mark.slow
def test_two_trial_study_finds_params_in_the_space_with_nested_mlflow_runs(tune_dataset, settings):
    space = {
        "lr0": FloatRange(1e-3, 1e-1, log=True),
        "momentum": FloatRange(0.6, 0.98),
        "warmup_epochs": IntRange(0, 2),
        "optimizer": Choice(("SGD", "AdamW")),
    }
    config = TuneConfig(data=tune_dataset, trials=2, epochs=2, search_space=space, study_name="two", **TINY)
    result = tune(config, progress=False)

    assert isinstance(result, TuneResult)
    assert (result.n_complete, result.n_pruned, result.n_failed, result.trials_run) == (2, 0, 0, 2)
    assert result.best_trial in (0, 1) and 0.0 <= result.best_value <= 1.0
    assert set(result.best_params) == set(space)
    assert all(contains(space[name], value) for name, value in result.best_params.items())
    assert isinstance(result.best_params["warmup_epochs"], int)
    assert result.storage == str(settings.home / "tuning" / "optuna.journal")

    study = _load_study(settings, "two")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[0].params != trials[1].params
    assert all(sorted(t.intermediate_values) == [1, 2] for t in trials)  # validated every epoch
    best = max(trials, key=lambda t: t.value)
    assert result.best_params == best.params and result.best_value == best.value

    client = _client(settings)
    parent = client.get_run(result.mlflow_parent_run_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "two"
    assert parent.data.tags["nexus.kind"] == "tuning" and "mlflow.parentRunId" not in parent.data.tags
    assert parent.data.params["best.lr0"] == str(result.best_params["lr0"])
    assert parent.data.params["best.optimizer"] == result.best_params["optimizer"]
    assert parent.data.metrics["best/mAP50-95"] == pytest.approx(result.best_value)
    assert parent.data.metrics["n_complete"] == 2

    children = _children(settings, parent.info.run_id)
    assert [run.data.tags["optuna.trial.number"] for run in children] == ["0", "1"]
    for run, trial in zip(children, trials, strict=True):
        assert run.info.status == "FINISHED" and run.data.tags["optuna.trial.state"] == "COMPLETE"
        assert run.data.tags["nexus.kind"] == "tuning-trial"
        assert run.info.run_id == trial.user_attrs["mlflow_run_id"]
        assert run.data.params["extra.lr0"] == str(trial.params["lr0"])
        assert run.data.params["extra.optimizer"] == trial.params["optimizer"]
        assert run.data.params["extra.val"] == "True" and run.data.params["epochs"] == "2"
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "mAP50-95")) == [1, 2]
        assert (
            Path(trial.user_attrs["run_dir"])
            == settings.home / "runs" / "tune" / "two" / f"trial-{trial.number}"
        )
    assert parent.data.tags["nexus.best_run_id"] == children[result.best_trial].info.run_id


def _results_rows(run_dir: Path) -> int:
    with (run_dir / "results.csv").open(encoding="utf-8") as handle:
        return len(list(csv.DictReader(handle)))


@pytest.mark.slow
def test_a_pruned_trial_stops_early_and_closes_its_mlflow_run(tune_dataset, settings):
    config = TuneConfig(
        data=tune_dataset,
        trials=1,
        epochs=3,
        pruner=optuna.pruners.ThresholdPruner(lower=2.0),  # mAP is never >= 2: prunes at the first report
        study_name="pruned",
        **TINY,
    )
    result = tune(config, progress=False)

    assert (result.n_complete, result.n_pruned, result.trials_run) == (0, 1, 1)
    assert result.best_value is None and result.best_trial is None
    assert result.best_params == config.defaults()  # nothing completed: the defaults

    (trial,) = _load_study(settings, "pruned").get_trials()
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]
    assert trial.user_attrs["epochs_completed"] == 1 < config.epochs
    assert _results_rows(Path(trial.user_attrs["run_dir"])) == 1  # Ultralytics trained one epoch of 3

    client = _client(settings)
    (run,) = _children(settings, result.mlflow_parent_run_id)
    assert run.info.run_id == trial.user_attrs["mlflow_run_id"]
    assert run.info.status == "FINISHED" and run.info.end_time is not None
    assert run.data.tags["optuna.trial.state"] == "PRUNED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "mAP50-95")) == [1]
    parent = client.get_run(result.mlflow_parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_pruned"] == 1
    assert "best/mAP50-95" not in parent.data.metrics and "best.lr0" not in parent.data.params


@pytest.mark.slow
def test_a_study_resumes_from_its_storage_and_keeps_counting(tune_dataset, settings, tmp_path):
    storage = tmp_path / "studies.db"  # SQLite here; the journal file is covered above
    config = dict(data=tune_dataset, trials=1, epochs=1, study_name="resumed", storage=storage, **TINY)

    first = tune(TuneConfig(**config), progress=False)
    second = tune(TuneConfig(**config), progress=False)

    assert (first.n_complete, first.trials_run) == (1, 1)
    assert (second.n_complete, second.trials_run) == (2, 1)
    assert second.storage == str(storage) and storage.is_file()
    assert first.mlflow_parent_run_id != second.mlflow_parent_run_id
    study = optuna.load_study(study_name="resumed", storage=f"sqlite:///{storage}")
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1] and all(t.state == TrialState.COMPLETE for t in trials)
    assert trials[0].params != trials[1].params  # the continued study did not replay the first draw
    assert second.best_trial in (0, 1) and second.best_value == max(t.value for t in trials)
    (child,) = _children(settings, second.mlflow_parent_run_id)
    assert child.data.tags["optuna.trial.number"] == "1"
    assert (settings.home / "runs" / "tune" / "resumed" / "trial-1" / "weights" / "last.pt").is_file()
    assert _client(settings).get_run(second.mlflow_parent_run_id).data.params["trials_before"] == "1"

    with pytest.raises(
        ValueError, match=r"study 'resumed' in .* was run with other settings \(epochs='1' there"
    ):
        tune(TuneConfig(**{**config, "epochs": 2}), progress=False)  # values of 2 epochs would not compare
    assert len(optuna.load_study(study_name="resumed", storage=f"sqlite:///{storage}").trials) == 2


@pytest.mark.slow
def test_a_failing_trial_fails_the_study_run_and_is_recorded(tune_dataset, settings, monkeypatch):
    from ultralytics.engine.trainer import BaseTrainer

    def broken_optimizer(*args, **kwargs):  # a failure only the training itself can meet
        raise RuntimeError("optimizer could not be built")

    monkeypatch.setattr(BaseTrainer, "build_optimizer", broken_optimizer)
    space = {"optimizer": Choice(("SGD",))}
    config = TuneConfig(
        data=tune_dataset, trials=2, epochs=1, search_space=space, study_name="failing", **TINY
    )
    with pytest.raises(RuntimeError, match="optimizer could not be built"):
        tune(config, progress=False)

    (trial,) = _load_study(settings, "failing").get_trials()  # the study stopped at the first failure
    assert trial.state == TrialState.FAIL
    client = _client(settings)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment).experiment_id
    (parent,) = client.search_runs([experiment], "tags.`nexus.kind` = 'tuning'")
    assert parent.info.status == "FAILED"
    (child,) = _children(settings, parent.info.run_id)
    assert child.info.status == "FAILED" and "optuna.trial.state" not in child.data.tags
