"""The ``tune`` KFP component: compiles alone and feeding ``train``; runs locally into ``train``."""

# No ``from __future__ import annotations``: KFP reads the pipelines' annotations as types.
import warnings
from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl
from kfp.dsl import Dataset, Metrics

from components.train import train
from components.tune import tune


def _compile(pipeline, path: Path) -> dict:
    compiler.Compiler().compile(pipeline, str(path))
    return yaml.safe_load(path.read_text())


def test_tune_compiles_in_a_one_step_pipeline(tmp_path):
    @dsl.pipeline(name="tune-only")
    def tune_only(source: str, trials: int = 0):
        data = dsl.importer(artifact_uri=source, artifact_class=Dataset, reimport=False)
        tune(dataset=data.output, trials=trials)

    spec = _compile(tune_only, tmp_path / "tune.yaml")
    component = spec["components"]["comp-tune"]
    inputs = component["inputDefinitions"]["parameters"]
    assert {name: inputs[name]["defaultValue"] for name in inputs} == {
        "trials": 0,
        "epochs": 3,
        "imgsz": 160,
        "batch": 16,
        "architecture": "yolov8n.yaml",
        "seed": 0,
        "device": "cpu",
        "nominal_batch": 16,
    }
    assert (
        component["inputDefinitions"]["artifacts"]["dataset"]["artifactType"]["schemaTitle"]
        == "system.Dataset"
    )
    assert (
        component["outputDefinitions"]["artifacts"]["metrics"]["artifactType"]["schemaTitle"]
        == "system.Metrics"
    )
    assert component["outputDefinitions"]["parameters"]["Output"]["parameterType"] == "STRING"
    task = spec["root"]["dag"]["tasks"]["tune"]
    assert task["inputs"]["parameters"]["trials"]["componentInputParameter"] == "trials"


def test_tune_output_feeds_train_hyperparameters(tmp_path):
    @dsl.pipeline(name="tune-then-train")
    def tune_then_train(source: str):
        data = dsl.importer(artifact_uri=source, artifact_class=Dataset, reimport=False)
        best = tune(dataset=data.output, trials=2)
        train(dataset=data.output, hyperparameters=best.outputs["Output"])

    spec = _compile(tune_then_train, tmp_path / "both.yaml")
    train_inputs = spec["components"]["comp-train"]["inputDefinitions"]["parameters"]
    assert train_inputs["hyperparameters"] == {
        "defaultValue": "{}",
        "isOptional": True,
        "parameterType": "STRING",
    }
    assert train_inputs["epochs"]["defaultValue"] == 30  # the existing parameters are unchanged
    wiring = spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["hyperparameters"]
    assert wiring["taskOutputParameter"] == {"outputParameterKey": "Output", "producerTask": "tune"}


def test_zero_trials_returns_an_empty_object_without_training(tune_dataset, settings, tmp_path):
    metrics = Metrics(uri=str(tmp_path / "metrics"))
    out = tune.python_func(dataset=Dataset(uri=str(tune_dataset)), metrics=metrics, trials=0)
    assert out == "{}"
    assert metrics.metadata == {"trials_complete": 0, "trials_pruned": 0, "mlflow_parent_run_id": ""}
    assert not settings.home.exists()


def _run_locally(pipeline, root: Path, monkeypatch: pytest.MonkeyPatch, **arguments):
    from kfp import local

    monkeypatch.setenv("TMPDIR", str(root / "tmp"))
    (root / "tmp").mkdir(parents=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), enable_caching=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        return pipeline(**arguments)


@pytest.mark.slow
def test_local_run_tunes_then_trains_with_the_best_params(tune_dataset, settings, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    @dsl.pipeline(name="tune-train-local")
    def tune_train(source: str) -> str:
        data = dsl.importer(artifact_uri=source, artifact_class=Dataset, reimport=False)
        best = tune(dataset=data.output, trials=1, epochs=1, imgsz=64, batch=8)
        trained = train(
            dataset=data.output, epochs=1, imgsz=64, batch=8, hyperparameters=best.outputs["Output"]
        )
        return trained.outputs["Output"]

    run = _run_locally(tune_train, tmp_path / "kfp", monkeypatch, source=str(tune_dataset))
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    trained = client.get_run(run.output)
    params = trained.data.params
    assert trained.info.status == "FINISHED" and "mlflow.parentRunId" not in trained.data.tags
    experiment = client.get_experiment_by_name(settings.mlflow_experiment).experiment_id
    (trial,) = client.search_runs([experiment], "tags.`nexus.kind` = 'tuning-trial'")
    assert trial.data.tags["optuna.trial.state"] == "COMPLETE"
    tuned = {
        key.removeprefix("extra."): value
        for key, value in trial.data.params.items()
        if key.startswith("extra.")
    }
    tuned.pop("val"), tuned.pop("plots")
    # trials and the final training share the recipe: an optimizer step per 16 images
    assert tuned.pop("nbs") == params["extra.nbs"] == "16"
    assert sorted(tuned) == ["fliplr", "hsv_h", "hsv_s", "hsv_v", "lr0", "momentum", "mosaic", "weight_decay"]
    assert {key: params[f"extra.{key}"] for key in tuned} == tuned  # train got exactly the trial's values
