"""The pipelines: compiled IR kept current; local kfp runs through gate, registry, deployment and cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nexus.cli.main import main
from nexus.pipelines import PIPELINES, compile_pipeline, compiled_path
from nexus.registry import CHALLENGER, CHAMPION, ModelRegistry
from nexus.registry.model_registry import STATUS_TAG
from nexus.serving.deployment import LocalDeployment
from nexus.settings import NexusSettings

TINY = {"synth_images": 24, "imgsz": 64, "epochs": 1, "batch": 8, "min_map50": 0.0}
EXPECTED_TASKS = {
    "training": {"ingest", "tune", "train", "export", "evaluate", "gate", "condition-1"},
    "retrain-on-drift": {"ingest", "drift", "condition-1"},
}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_checked_in_ir_yaml_is_current(name, tmp_path):
    fresh = compile_pipeline(name, tmp_path / f"{name}.yaml")
    assert fresh.read_text() == compiled_path(name).read_text(), (
        f"pipelines/{name}.yaml is stale: run `nexus pipeline compile {name}`"
    )
    spec = yaml.safe_load(fresh.read_text())
    assert EXPECTED_TASKS[name] <= set(spec["root"]["dag"]["tasks"])


def cli_args(**arguments: object) -> list[str]:
    return [f"--arg={key}={value}" for key, value in arguments.items()]


def run_training(root: Path, **overrides: object) -> int:
    return main(["pipeline", "run", "training", "--root", str(root), *cli_args(**{**TINY, **overrides})])


def training_runs(settings: NexusSettings) -> int:
    import mlflow

    mlflow.set_tracking_uri(str(settings.mlflow_tracking_uri))
    runs = mlflow.search_runs(experiment_names=[settings.mlflow_experiment], output_format="list")
    return sum(run.data.tags.get("nexus.kind") == "training" for run in runs)


@pytest.fixture
def home(tmp_path, monkeypatch) -> NexusSettings:
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return NexusSettings.from_env()


@pytest.mark.slow
def test_gate_registers_deploys_and_reruns_from_cache(home, tmp_path, capsys):
    root = tmp_path / "runs"
    registry = ModelRegistry(home, "nexus-detector")

    # 1. The first model passing the minimum becomes the champion, with its lineage.
    assert run_training(root) == 0
    first = registry.require(CHAMPION)
    assert first.version == "1" and first.tags[STATUS_TAG] == "champion"
    lineage = first.lineage
    assert lineage.training_run_id == first.run_id and lineage.dataset_dvc_hash.endswith(".dir")
    assert lineage.pipeline_run.startswith("training-") and len(lineage.git_commit) == 40
    assert Path(lineage.evaluation_report.removeprefix("file://")).read_text().startswith("<html>")
    assert "mAP50" in lineage.metrics
    record = LocalDeployment.load(home, "nexus-detector")
    assert (record.champion, record.challenger) == ("1", None)
    trainings = training_runs(home)
    # train's default recipe: an optimizer step per 16 images (nominal_batch), not Ultralytics' 64
    assert "\nnbs: 16\n" in (home.home / "runs" / "pipeline" / "args.yaml").read_text()

    # 2. Unchanged inputs: every step before the gate comes from the cache; nothing new registered.
    assert run_training(root) == 0
    assert training_runs(home) == trainings
    assert [v.version for v in registry.versions()] == ["1"]
    assert LocalDeployment.load(home, "nexus-detector").history == record.history

    # 3. Another model that must beat the champion by a full point: the gate stops it.
    capsys.readouterr()
    assert run_training(root, seed=1, max_regression=-1.0) == 0
    assert [v.version for v in registry.versions()] == ["1"]
    assert registry.get(CHALLENGER) is None
    assert LocalDeployment.load(home, "nexus-detector").challenger is None

    # 4. Allowed to regress: registered as challenger and deployed as a 10% canary (training cached).
    assert run_training(root, seed=1, max_regression=1.0) == 0
    assert training_runs(home) == trainings + 1
    assert registry.require(CHALLENGER).version == "2" and registry.require(CHAMPION).version == "1"
    record = LocalDeployment.load(home, "nexus-detector")
    assert (record.champion, record.challenger, record.canary_percent) == ("1", "2", 10.0)


def test_promote_and_rollback_components(home, tmp_path):
    from kfp import local

    from components.deploy import promote, rollback
    from nexus.registry import Lineage
    from nexus.serving.rollout import deploy_version

    for version, content in (("1", b"champion"), ("2", b"challenger")):
        folder = tmp_path / "exports" / version
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(content)
        ModelRegistry(home, "nexus-detector").register(folder, Lineage())
        deploy_version(home, "nexus-detector", version, 10)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "steps"))
    assert promote(deployment="nexus-detector").output == "2"
    assert ModelRegistry(home, "nexus-detector").require(CHAMPION).version == "2"
    assert rollback(deployment="nexus-detector").output == "1"
    assert ModelRegistry(home, "nexus-detector").require(CHAMPION).version == "1"
    with pytest.raises(RuntimeError):  # nothing left to roll back to: the task fails with the reason
        rollback(deployment="nexus-detector")


@pytest.mark.slow
def test_a_killed_run_resumes_from_cached_steps(home, tmp_path):
    root = tmp_path / "runs"
    command = [sys.executable, "-m", "nexus.cli.main", "pipeline", "run", "training", "--root", str(root)]
    command += cli_args(**{**TINY, "seed": 2})
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=os.environ
    )
    deadline = time.monotonic() + 300
    while not list(root.glob("training-*/train")) and time.monotonic() < deadline:
        assert process.poll() is None, "the pipeline ended before its train step started"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # killed while training
    process.wait()
    (killed,) = root.glob("training-*")
    assert (killed / "ingest").is_dir() and not (killed / "export").exists()
    assert registry_versions(home) == []

    assert run_training(root, seed=2) == 0
    (resumed,) = [run for run in root.glob("training-*") if run != killed]
    assert not (resumed / "ingest").exists() and not (resumed / "tune").exists()  # served from the cache
    assert (resumed / "train").is_dir() and (resumed / "register").is_dir()
    versions = registry_versions(home)
    assert [v.tags[STATUS_TAG] for v in versions] == ["champion"]


def registry_versions(settings: NexusSettings):
    return ModelRegistry(settings, "nexus-detector").versions()


def write_bad_dataset(root: Path, problem: str) -> Path:
    from nexus.datasets import SynthConfig, synthesize_dataset

    synthesize_dataset(root, SynthConfig(images=12, seed=5, imgsz=64))
    if problem == "empty split":
        for image in (root / "images" / "val").iterdir():
            image.unlink()
        for label in (root / "labels" / "val").iterdir():
            label.unlink()
    elif problem == "class map":
        text = (root / "dataset.yaml").read_text()
        (root / "dataset.yaml").write_text(text.replace("names:", "names: 7\nold_names:"))
    return root


@pytest.mark.parametrize(
    ("problem", "message"),
    [("missing", "not found"), ("empty split", "empty"), ("class map", "names")],
)
def test_bad_datasets_fail_with_a_clear_message(home, tmp_path, capsys, problem, message):
    source = tmp_path / "nope" if problem == "missing" else write_bad_dataset(tmp_path / "data", problem)
    rc = main(["pipeline", "run", "training", "--root", str(tmp_path / "r"), f"--arg=source={source}"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "pipeline 'training' failed" in err and message in err.lower()
    assert registry_versions(home) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope"], "unknown pipeline"),
        (["run", "training", "--arg", "x"], "name=value"),
        (["run", "training", "--arg", "epochs=many"], "must be of type Integer"),
        (["run", "training", "--arg", "colour=red"], "no parameter 'colour'"),
        (["run", "training", "--arg", "min_map50=NaN"], "'min_map50' of pipeline 'training' must be between"),
        (["run", "training", "--arg=max_regression=Infinity"], "must be between -1 and 1 (mAP50 it"),
        (["run", "training", "--arg", "canary_percent=250"], "must be above 0 and at most 100, got 250.0"),
        (["run", "training", "--arg", "deploy_target=kserv"], "must be 'local' or 'kserve', got 'kserv'"),
        (["run", "training", "--arg", "epochs=0"], "'epochs' of pipeline 'training' must be at least 1"),
        (["run", "training", "--arg", "imgsz=100"], "'imgsz' of pipeline 'training' must be a multiple"),
        (["run", "retrain-on-drift", "--arg", "batch=0"], "'batch' of pipeline 'retrain-on-drift' must be"),
        (["run", "training", "--host", "http://127.0.0.1:9"], "cannot submit 'training' to Kubeflow"),
    ],
)
def test_bad_cli_input(args, message, capsys):
    assert main(["pipeline", *args]) == 2
    assert message in capsys.readouterr().err


def test_integer_values_are_accepted_for_float_parameters():
    from nexus.pipelines import coerce_arguments

    assert coerce_arguments("training", {"min_map50": 1, "source": 5}) == {"min_map50": 1.0, "source": "5"}


def test_null_is_not_a_string_parameter():
    from nexus.errors import NexusError
    from nexus.pipelines import coerce_arguments

    with pytest.raises(
        NexusError, match="parameter 'source' of pipeline 'training' must be of type String, got None"
    ):
        coerce_arguments("training", {"source": None})


def shifted_copy(source: Path, target: Path) -> Path:
    """A copy of a dataset whose images are darker and blurred (new camera, night shift)."""
    import shutil

    import cv2

    shutil.copytree(source, target)
    for image in target.glob("images/*/*"):
        pixels = cv2.imread(str(image))
        cv2.imwrite(str(image), cv2.GaussianBlur((pixels * 0.35).astype("uint8"), (7, 7), 0))
    return target


@pytest.mark.slow
@pytest.mark.parametrize("shifted", [True, False])
def test_retrain_on_drift_trains_only_when_the_data_drifted(home, tmp_path, shifted):
    from nexus.datasets import SynthConfig, synthesize_dataset

    fresh = tmp_path / "fresh"
    synthesize_dataset(fresh, SynthConfig(images=24, seed=11, imgsz=64))
    current = shifted_copy(fresh, tmp_path / "shifted") if shifted else fresh
    arguments = {
        "current_source": current, "synth_images": 24, "imgsz": 64, "epochs": 1, "batch": 8, "min_map50": 0.0,
    }  # fmt: skip
    root = tmp_path / "runs"
    assert main(["pipeline", "run", "retrain-on-drift", "--root", str(root), *cli_args(**arguments)]) == 0
    (run,) = (tmp_path / "runs").glob("retrain-on-drift-*")
    assert (run / "drift" / "report").read_text().count("<html") >= 1
    assert training_runs(home) == (1 if shifted else 0)
    versions = registry_versions(home)
    assert len(versions) == (1 if shifted else 0)
    if shifted:
        assert (
            ModelRegistry(home, "nexus-detector")
            .require(CHAMPION)
            .lineage.pipeline_run.startswith("retrain-on-drift-")
        )


def test_ingest_imports_and_splits_an_unsplit_coco_export(tmp_path):
    import shutil

    from kfp import local

    from components.ingest import ingest
    from nexus.datasets import SynthConfig, YoloDataset, export_coco, synthesize_dataset

    synthesize_dataset(tmp_path / "shapes", SynthConfig(images=20, seed=4, imgsz=64))
    shapes = YoloDataset.load(tmp_path / "shapes")
    export = tmp_path / "coco-export"
    export_coco(shapes, "train", export / "annotations.json")
    shutil.copytree(shapes.splits["train"], export / "images")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "steps"))
    task = ingest(source=str(export), val_fraction=0.25, seed=1)
    ingested = YoloDataset.load(task.outputs["dataset"].path)
    counts = {split: len(ingested.image_paths(split)) for split in ingested.splits}
    assert sum(counts.values()) == len(shapes.image_paths("train")) and counts["val"] >= 1
    assert ingested.names == shapes.names
    assert task.outputs["dataset"].metadata["dvc_hash"].endswith(".dir")


@pytest.mark.slow
def test_tensorrt_export_without_tensorrt_stops_with_the_reason(home, tmp_path, capsys):
    assert run_training(tmp_path / "runs", tensorrt=True) == 2
    err = capsys.readouterr().err
    assert "Inner task failed: 'export'" in err and "TensorRT" in err
    assert registry_versions(home) == []
