"""MLflow registry: registration with lineage, idempotency, aliases through promote and rollback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nexus.cli.main import main
from nexus.errors import ModelLoadError, RegistryError
from nexus.registry import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, Lineage, ModelRegistry
from nexus.registry.model_registry import CONTENT_TAG, STATUS_TAG
from nexus.serving.model_source import ModelSource
from nexus.settings import NexusSettings


@pytest.fixture
def registry(tmp_path, monkeypatch) -> ModelRegistry:
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return ModelRegistry(NexusSettings.from_env(), name="detector")


def export_folder(root: Path, content: bytes) -> Path:
    folder = root / content.hex()[:12]
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(content)
    return folder


def test_register_tags_lineage_and_stores_the_report(registry, tmp_path):
    report = tmp_path / "report"
    report.write_text("<html>mAP50 0.93</html>")
    lineage = Lineage(
        training_run_id="", dataset_dvc_hash="abc.dir", git_commit="deadbeef", pipeline_run="training-1",
        metrics={"mAP50": 0.93},
    )  # fmt: skip
    version = registry.register(export_folder(tmp_path, b"one"), lineage, evaluation_report=report)
    assert (version.version, version.aliases) == ("1", (CHALLENGER,))
    assert version.tags[STATUS_TAG] == "registered" and len(version.tags[CONTENT_TAG]) == 64
    assert version.lineage.dataset_dvc_hash == "abc.dir" and version.lineage.metrics == {"mAP50": 0.93}
    assert version.lineage.pipeline_run == "training-1" and version.lineage.git_commit == "deadbeef"
    report_file = Path(version.lineage.evaluation_report.removeprefix("file://"))
    assert report_file.read_text() == "<html>mAP50 0.93</html>"
    # the version's files are reachable through the registry URI (what `nexus serve models:/...` uses)
    served = ModelSource.parse("models:/detector@challenger").resolve(cache_dir=tmp_path / "cache")
    assert served.read_bytes() == b"one"


def test_training_run_is_the_parent_of_the_version(registry, tmp_path):
    from nexus.training.tracking import MlflowTracker

    run_id = MlflowTracker.start(registry.settings, run_name="train").run_id
    version = registry.register(export_folder(tmp_path, b"w"), Lineage(training_run_id=run_id))
    assert version.run_id == run_id and version.lineage.training_run_id == run_id
    artifacts = [a.path for a in registry.client.list_artifacts(run_id)]
    assert "exported-model" in artifacts


def test_registering_the_same_model_twice_returns_the_same_version(registry, tmp_path):
    first = registry.register(export_folder(tmp_path / "a", b"same"), Lineage())
    again = registry.register(export_folder(tmp_path / "b", b"same"), Lineage())
    assert again.version == first.version and len(registry.versions()) == 1


def test_a_half_registered_version_is_replaced(registry, tmp_path):
    folder = export_folder(tmp_path, b"crash")
    from nexus.registry.model_registry import folder_sha256

    registry.register(export_folder(tmp_path / "x", b"other"), Lineage())
    # what a crash between create_model_version and the tags leaves behind
    source = registry.require("1").source
    registry.client.create_model_version(
        "detector", source, tags={CONTENT_TAG: folder_sha256(folder), STATUS_TAG: "incomplete"}
    )
    version = registry.register(folder, Lineage(metrics={"mAP50": 0.5}))
    statuses = {v.version: v.tags.get(STATUS_TAG) for v in registry.versions()}
    assert "incomplete" not in statuses.values()
    assert version.version == "3" and "2" not in statuses


def test_promote_then_rollback_moves_the_aliases(registry, tmp_path):
    for index, content in enumerate((b"v1", b"v2", b"v3"), start=1):
        registry.register(export_folder(tmp_path, content), Lineage(metrics={"mAP50": index / 10}))
        assert registry.promote().version == str(index)
    assert registry.require(CHAMPION).version == "3"
    assert registry.require(PREVIOUS_CHAMPION).version == "2"
    restored = registry.rollback()
    assert restored.version == "2" and restored.aliases == (CHAMPION,)
    assert registry.require("3").tags[STATUS_TAG] == "rolled-back"
    with pytest.raises(RegistryError, match="no challenger and no previous champion"):
        registry.rollback()


def test_rollback_during_a_canary_drops_the_challenger(registry, tmp_path):
    registry.register(export_folder(tmp_path, b"a"), Lineage())
    registry.promote()
    registry.register(export_folder(tmp_path, b"b"), Lineage())
    assert registry.rollback().version == "1"
    assert registry.get(CHALLENGER) is None and registry.require(CHAMPION).version == "1"


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda r, tmp: r.promote(), "no version or alias 'challenger'"),
        (lambda r, tmp: r.rollback(), "no challenger and no previous champion"),
        (lambda r, tmp: r.register(tmp, Lineage()), "no exported ONNX model"),
        (lambda r, tmp: r.require("7"), "no version or alias '7'"),
    ],
)
def test_bad_requests_say_what_is_missing(registry, tmp_path, action, message):
    with pytest.raises(RegistryError, match=message):
        action(registry, tmp_path)


def test_bad_model_names_are_refused():
    with pytest.raises(RegistryError, match="without '/'"):
        ModelRegistry(NexusSettings(), name="a/b")


def test_unknown_registry_uri_is_a_model_load_error(registry, tmp_path):
    with pytest.raises(ModelLoadError, match="cannot fetch models:/nope@champion"):
        ModelSource.parse("models:/nope@champion").resolve(cache_dir=tmp_path)


def test_cli_lists_and_shows_versions(registry, tmp_path, capsys):
    registry.register(export_folder(tmp_path, b"cli"), Lineage(dataset_dvc_hash="h.dir"))
    assert main(["registry", "list", "--model", "detector"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in listed] == ["1"]
    assert main(["registry", "show", "challenger", "--model", "detector"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lineage"]["dataset_dvc_hash"] == "h.dir" and shown["uri"] == "models:/detector/1"
    assert main(["registry", "show", "champion", "--model", "detector"]) == 2
    assert "no version or alias 'champion'" in capsys.readouterr().err
    for command in (["list"], ["show", "1"]):
        assert main(["registry", *command, "--model", "detectr"]) == 2
        error = capsys.readouterr().err
        assert "no registered model 'detectr' (registered: detector)" in error and "--model" in error


def test_versions_list_their_aliases_and_a_champion_keeps_its_role(registry, tmp_path):
    registry.register(export_folder(tmp_path / "a", b"champ"), Lineage())
    registry.promote()
    again = registry.register(export_folder(tmp_path / "b", b"champ"), Lineage())  # a pipeline re-run
    assert again.aliases == (CHAMPION,)
    assert [(v.version, v.aliases) for v in registry.versions()] == [("1", (CHAMPION,))]
