"""``nexus batch predict`` on a real Spark ``local[2]`` into a real Delta table (delta-rs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from deltalake import DeltaTable

from nexus.batch import BatchPredictConfig, run_batch_predict
from nexus.batch.predict import BatchError
from nexus.cli.main import main
from nexus.errors import ModelLoadError
from nexus.inference.detector import Detector
from nexus.vision.image_io import load_image
from nexus.vision.postprocess import PostprocessOptions


@pytest.fixture
def image_folder(tmp_path, val_images) -> Path:
    """12 validation images (4 in a subfolder), one corrupt JPEG and a text file Spark must skip."""
    folder = tmp_path / "images"
    (folder / "nested").mkdir(parents=True)
    for index, path in enumerate(val_images[:12]):
        shutil.copy(path, folder / ("nested" if index % 3 == 0 else "") / path.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(64))
    (folder / "notes.txt").write_text("not an image")
    return folder


def rows_by_image(table: Path) -> dict[str, list[dict]]:
    frame = DeltaTable(str(table)).to_pandas()
    grouped: dict[str, list[dict]] = {}
    for row in frame.to_dict("records"):
        grouped.setdefault(row["image_path"].removeprefix("file:"), []).append(row)
    return grouped


def test_detections_equal_the_detector_and_every_image_is_accounted_for(
    spark, detect_onnx, image_folder, tmp_path
):
    table = tmp_path / "detections"
    config = BatchPredictConfig(images=image_folder, model=detect_onnx, table=table, conf=0.001, batch_size=5)
    result = run_batch_predict(config, spark)

    assert (result.images, result.failed_images, result.table_version) == (13, 1, 0)
    rows = rows_by_image(table)
    assert len(rows) == 13 and not any(path.endswith("notes.txt") for path in rows)
    (broken,) = rows[str(image_folder / "broken.jpg")]
    assert broken["error"] and "broken.jpg" in broken["error"] and np.isnan(broken["detection_index"])

    detector = Detector.from_path(detect_onnx)
    total = 0
    for path in sorted(p for p in image_folder.rglob("*.jpg") if p.name != "broken.jpg"):
        image = load_image(path)
        (expected,) = detector.predict_arrays([image], PostprocessOptions(conf_threshold=0.001))
        found = sorted(
            (r for r in rows[str(path)] if not np.isnan(r["detection_index"])),
            key=lambda r: r["detection_index"],
        )
        assert len(found) == len(expected), path
        total += len(found)
        if found:
            boxes = np.array([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in found])
            np.testing.assert_allclose(boxes, expected.xyxy, atol=1e-3)
            assert [int(r["class_id"]) for r in found] == expected.class_id.tolist()
            assert [r["class_name"] for r in found] == list(expected.class_name)
            np.testing.assert_allclose([r["confidence"] for r in found], expected.confidence, atol=1e-5)
        assert {(r["image_height"], r["image_width"]) for r in rows[str(path)]} == {image.shape[:2]}
        assert {r["job_id"] for r in rows[str(path)]} == {result.job_id}
    assert total == result.detections > 0


@pytest.mark.parametrize("full_decode", [False, True])
def test_large_jpegs_decode_scaled_unless_asked_and_rows_keep_full_image_pixels(
    spark, detect_onnx, val_images, tmp_path, full_decode
):
    """Photos four times the model's input decode at 1/4 by default (as the serving predictor does);
    either way heights, widths and boxes are the full image's."""
    import cv2

    from nexus.vision.image_io import ScaledImage, decode_image_for_input

    folder = tmp_path / "large"
    folder.mkdir()
    for path in val_images[:3]:
        large = cv2.resize(cv2.imread(str(path)), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / path.name), large, [cv2.IMWRITE_JPEG_QUALITY, 95])
    table = tmp_path / "detections"
    config = BatchPredictConfig(
        images=folder, model=detect_onnx, table=table, conf=0.001, full_decode=full_decode
    )
    result = run_batch_predict(config, spark)
    assert (result.images, result.failed_images) == (3, 0) and result.detections > 0
    rows = rows_by_image(table)
    detector = Detector.from_path(detect_onnx)
    options = PostprocessOptions(conf_threshold=0.001)
    for path in sorted(folder.glob("*.jpg")):
        data = path.read_bytes()
        if full_decode:
            (expected,) = detector.predict_arrays([load_image(path)], options)
        else:
            scaled = decode_image_for_input(data, detector.input_size())
            assert isinstance(scaled, ScaledImage) and scaled.pixels.shape[:2] == (96, 96)
            (expected,) = detector.predict_arrays([scaled.pixels], options, original_shapes=[(384, 384)])
        found = sorted(rows[str(path)], key=lambda r: r["detection_index"])
        assert {(r["image_height"], r["image_width"]) for r in found} == {(384, 384)}
        boxes = np.array([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in found])
        np.testing.assert_allclose(boxes, expected.xyxy, atol=1e-3)
        assert boxes.max() > 96  # full-image pixels, not those of the 1/4 decode


def test_append_adds_a_version_and_overwrite_replaces(spark, detect_onnx, image_folder, tmp_path):
    table = tmp_path / "detections"
    first = run_batch_predict(BatchPredictConfig(images=image_folder, model=detect_onnx, table=table), spark)
    rows_once = len(DeltaTable(str(table)).to_pandas())
    second = run_batch_predict(BatchPredictConfig(images=image_folder, model=detect_onnx, table=table), spark)
    frame = DeltaTable(str(table)).to_pandas()
    assert (first.table_version, second.table_version) == (0, 1)
    assert len(frame) == 2 * rows_once and set(frame.job_id) == {first.job_id, second.job_id}

    config = BatchPredictConfig(images=image_folder, model=detect_onnx, table=table, mode="overwrite")
    third = run_batch_predict(config, spark)
    frame = DeltaTable(str(table)).to_pandas()
    assert third.table_version == 2 and len(frame) == rows_once and set(frame.job_id) == {third.job_id}
    assert len(DeltaTable(str(table), version=1).to_pandas()) == 2 * rows_once  # time travel
    assert not list(tmp_path.glob(".detections.staging-*"))  # staging removed


def test_cli_prints_the_result_as_json(spark, detect_onnx, image_folder, tmp_path, capsys):
    table = tmp_path / "cli-table"
    argv = [
        "batch",
        "predict",
        str(image_folder),
        "--model",
        str(detect_onnx),
        "--table",
        str(table),
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 13 and result["table_version"] == 0
    assert len(DeltaTable(str(table)).to_pandas()) >= result["detections"]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"images": "/nonexistent/frames"}, BatchError, "no such folder"),
        ({"conf": 1.5}, BatchError, "conf must be between 0 and 1"),
        ({"batch_size": 0}, BatchError, "batch_size"),
        ({"imgsz": 100_000}, BatchError, "imgsz must be between 32 and 4096, got 100000"),
        ({"mode": "merge"}, BatchError, "append or overwrite"),
        ({"master": "nonsense"}, BatchError, r"master='nonsense' is not a Spark master; pass local"),
        ({"master": "local[0]"}, BatchError, r"master='local\[0\]' is not a Spark master"),
    ],
)
def test_bad_settings_say_what_to_change(kwargs, error, words, image_folder, detect_onnx, tmp_path):
    with pytest.raises(error, match=words):
        BatchPredictConfig(
            **{"images": image_folder, "model": detect_onnx, "table": tmp_path / "t", **kwargs}
        )


def test_bad_model_table_or_empty_folder_fail_cleanly_and_keep_what_exists(
    spark, detect_onnx, image_folder, tmp_path, capsys
):
    not_a_model = tmp_path / "model.onnx"
    not_a_model.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError):
        run_batch_predict(
            BatchPredictConfig(images=image_folder, model=not_a_model, table=tmp_path / "t"), spark
        )

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("precious")
    with pytest.raises(BatchError, match="not a Delta table"):
        run_batch_predict(BatchPredictConfig(images=image_folder, model=detect_onnx, table=occupied), spark)
    assert (occupied / "keep.txt").read_text() == "precious"

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no images here")
    table = tmp_path / "never"
    with pytest.raises(BatchError, match="no images"):
        run_batch_predict(BatchPredictConfig(images=empty, model=detect_onnx, table=table), spark)
    assert not table.exists() or not (table / "_delta_log").exists()

    argv = ["batch", "predict", "/nonexistent/frames", "--model", str(detect_onnx), "--table", str(table)]
    assert main(argv) == 2
    assert "no such folder of images" in capsys.readouterr().err
