"""Model URIs: local files and folders now; MLflow and S3 parse and fail with clear errors offline."""

from __future__ import annotations

import pytest

from nexus.errors import ModelLoadError
from nexus.serving.model_source import ModelSource


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("/srv/models/best.onnx", "local"),
        ("best.pt", "local"),
        ("file:///srv/best.onnx", "local"),
        ("models:/detector@champion", "mlflow"),
        ("runs:/abc123/model", "mlflow"),
        ("s3://models/detector/v2/best.onnx", "s3"),
    ],
)
def test_parse(uri, kind):
    assert ModelSource.parse(uri).kind == kind


def test_unknown_scheme_names_the_choices():
    with pytest.raises(ModelLoadError, match="s3://"):
        ModelSource.parse("ftp://host/model.onnx")


@pytest.mark.parametrize(("device", "expected"), [("cpu", "model.onnx"), ("0", "model.pt")])
def test_folder_picks_the_export_for_the_device(tmp_path, device, expected):
    for name in ("model.onnx", "model.pt"):
        (tmp_path / name).write_bytes(b"x")
    assert ModelSource.parse(str(tmp_path)).resolve(device=device).name == expected


@pytest.mark.parametrize("make", [lambda p: p / "missing.onnx", lambda p: p])
def test_missing_model_is_a_model_load_error(tmp_path, make):
    with pytest.raises(ModelLoadError):
        ModelSource.parse(str(make(tmp_path))).resolve()


def test_unreachable_s3_is_a_model_load_error(tmp_path, monkeypatch):
    from nexus.serving.launcher import free_port

    monkeypatch.setenv("S3_ENDPOINT", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    with pytest.raises(ModelLoadError, match="cannot fetch"):
        ModelSource.parse("s3://models/best.onnx").resolve(cache_dir=tmp_path)
