from __future__ import annotations

import json

import pytest

from nexus.cli.main import main


def test_predict_json_lists_detections_per_image(detect_onnx, val_images, capsys):
    rc = main(
        ["predict", str(detect_onnx), str(val_images[0]), str(val_images[1]), "--conf", "0.0001", "--json"]
    )
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["task"] == "detect"
    assert [r["image"] for r in payload["results"]] == [str(val_images[0]), str(val_images[1])]
    first = payload["results"][0]["detections"]
    assert first and set(first[0]) >= {"xyxy", "confidence", "class_id", "class_name"}
    assert all(d["confidence"] >= 0.0001 for d in first)


def test_predict_segmentation_includes_rle_masks(segment_onnx, val_images, capsys):
    assert main(["predict", str(segment_onnx), str(val_images[0]), "--conf", "0.0001", "--json"]) == 0
    detections = json.loads(capsys.readouterr().out)["results"][0]["detections"]
    assert detections and all(set(d["mask"]) == {"size", "counts"} for d in detections)


def test_predict_table_output(detect_onnx, val_images, capsys):
    assert main(["predict", str(detect_onnx), str(val_images[0]), "--conf", "0.01"]) == 0
    assert "detections" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda tmp, model, image: ["predict", str(tmp / "missing.onnx"), str(image)], "no such model file"),
        (lambda tmp, model, image: ["predict", str(model), str(tmp / "missing.jpg")], "no such image file"),
        (lambda tmp, model, image: ["predict", str(model), str(tmp / "bad.jpg")], "not a decodable image"),
        (lambda tmp, model, image: ["predict", str(model), str(image), "--conf", "1.5"], "conf_threshold"),
        (lambda tmp, model, image: ["predict", str(tmp / "bad.jpg"), str(image)], "unknown model format"),
        (lambda tmp, model, image: ["predict", str(model), str(image), "--imgsz", "100000"], "at most 4096"),
        (lambda tmp, model, image: ["predict", str(model), str(image), "--classes", "3"], "not classes of"),
        (lambda tmp, model, image: ["predict", str(model), str(image), "--classes", "-1"], "[-1] are not"),
    ],
)
def test_predict_bad_input_is_one_line_and_exit_2(
    tmp_path, detect_onnx, val_images, capsys, make_args, message
):
    (tmp_path / "bad.jpg").write_bytes(b"not really a jpeg")
    rc = main(make_args(tmp_path, detect_onnx, val_images[0]))
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_export_cli_writes_onnx_and_reports_json(detect_weights, tmp_path, capsys):
    rc = main(["export", str(detect_weights), "--out", str(tmp_path / "out"), "--half", "--json"])
    assert rc == 0
    files = json.loads(capsys.readouterr().out)
    assert set(files) == {"onnx", "fp16"}
    assert all((tmp_path / "out" / name).is_file() for name in ("model.onnx", "model-fp16.onnx"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--int8"], "--data"),
        (["--format", "tflite"], "unknown export format"),
    ],
)
def test_export_cli_bad_options(detect_weights, tmp_path, capsys, args, message):
    rc = main(["export", str(detect_weights), "--out", str(tmp_path / "o"), *args])
    assert rc == 2 and message in capsys.readouterr().err


def test_export_cli_refuses_a_file_that_is_not_weights(tmp_path, capsys):
    fake = tmp_path / "fake.pt"
    fake.write_text("hello")
    assert main(["export", str(fake), "--out", str(tmp_path / "o")]) == 2
    assert "not an Ultralytics/PyTorch checkpoint" in capsys.readouterr().err
