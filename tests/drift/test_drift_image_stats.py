"""Per-image statistics, image sets and embeddings (no Evidently)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from drift_shifts import SHIFTS
from onnx import TensorProto, helper

from nexus.datasets import YoloDataset
from nexus.drift import (
    ImageEncoder,
    ImageSet,
    box_statistics,
    describe_images,
    feature_tensor_name,
    pixel_embedding,
    pixel_statistics,
)
from nexus.drift.embeddings import PIXEL_EMBEDDING_SIZE
from nexus.errors import DatasetError


def _checkerboard(size: int = 96, cell: int = 8) -> np.ndarray:
    grid = (np.indices((size, size)) // cell).sum(axis=0) % 2
    return np.repeat((grid * 200 + 30).astype(np.uint8)[..., None], 3, axis=2)


@pytest.mark.parametrize(
    ("shift", "column", "direction"),
    [
        ("dark", "brightness", -1),
        ("dark", "contrast", -1),
        ("blur", "sharpness", -1),
        ("small", "width", -1),
    ],
)
def test_a_shift_moves_its_statistic(shift, column, direction):
    image = _checkerboard()
    before, after = pixel_statistics(image)[column], pixel_statistics(SHIFTS[shift](image))[column]
    assert np.sign(after - before) == direction, (before, after)


def test_pixel_statistics_of_a_known_image():
    image = np.zeros((10, 40, 3), np.uint8)
    image[..., 2] = 200  # BGR: pure red
    stats = pixel_statistics(image)
    assert (stats["width"], stats["height"], stats["aspect_ratio"]) == (40.0, 10.0, 4.0)
    assert (stats["mean_red"], stats["mean_green"], stats["mean_blue"]) == (200.0, 0.0, 0.0)
    assert stats["contrast"] == 0.0 and stats["sharpness"] == 0.0
    assert stats["brightness"] == pytest.approx(0.299 * 200, abs=1)


def test_box_statistics_read_the_labels(drift_data):
    dataset = YoloDataset.load(drift_data["reference"])
    image = dataset.image_paths("train")[0]
    rows = dataset.read_rows(image)
    stats = box_statistics(image)
    assert stats["box_count"] == len(rows) > 0
    areas = [(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in (r.xyxy_normalized() for r in rows)]
    assert stats["box_area_mean"] == pytest.approx(np.mean(areas))


def test_pixel_embedding_is_deterministic_and_sees_blur():
    image = _checkerboard()
    first, again = pixel_embedding(image), pixel_embedding(image.copy())
    assert first.shape == (PIXEL_EMBEDDING_SIZE,) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    gradient = slice(PIXEL_EMBEDDING_SIZE - 8, None)
    assert first[gradient].sum() == pytest.approx(1.0)
    assert not np.allclose(first[gradient], pixel_embedding(cv2.GaussianBlur(image, (7, 7), 2.0))[gradient])


@pytest.mark.parametrize(
    ("source", "split", "count", "labelled"),
    [
        ("dataset", "train", 24, True),
        ("dataset", None, 30, True),
        ("yaml", "val", 6, True),
        ("folder", None, 30, False),
    ],
)
def test_image_set_opens_datasets_and_folders(drift_data, image_folder, source, split, count, labelled):
    path = {
        "dataset": drift_data["reference"],
        "yaml": drift_data["reference"] / "dataset.yaml",
        "folder": image_folder,
    }[source]
    image_set = ImageSet.open(path, split)
    assert (len(image_set.images), image_set.labelled) == (count, labelled)
    assert ("dataset" if labelled else "image folder") in image_set.description


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing", "no such dataset or image folder"),
        (lambda tmp: tmp, "no image files"),
        (lambda tmp: (tmp / "notes.txt").write_text("x") and tmp / "notes.txt", "expected a dataset folder"),
    ],
)
def test_image_set_refuses_bad_paths(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(DatasetError, match=message) as caught:
        ImageSet.open(path)
    assert str(path) in str(caught.value)


def test_image_set_refuses_an_unknown_split(drift_data):
    with pytest.raises(DatasetError, match="no split 'test'"):
        ImageSet.open(drift_data["reference"], "test")


def test_describe_images_skips_undecodable_files(image_folder, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    images = sorted(image_folder.glob("*.jpg"))[:4]
    for path in images:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    table = describe_images(ImageSet.open(folder))
    assert len(table.stats) == 4 and table.embeddings.shape == (4, PIXEL_EMBEDDING_SIZE)
    assert len(table.skipped) == 1 and "broken.jpg" in table.skipped[0]
    assert "box_count" not in table.stats  # a plain folder has no labels
    sample = describe_images(ImageSet.open(folder), max_images=2)  # evenly spaced: first and last file
    assert len(sample.stats) + len(sample.skipped) == 2 and sample.stats.index[-1].endswith(images[-1].name)


def _graph(with_maxpool: bool) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["images"], ["features"])]
    nodes.append(
        helper.make_node("MaxPool", ["features"], ["output0"], kernel_shape=[2, 2])
        if with_maxpool
        else helper.make_node("Identity", ["features"], ["output0"])
    )
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph)


@pytest.mark.parametrize(("with_maxpool", "expected"), [(True, "features"), (False, None)])
def test_feature_tensor_is_the_input_of_the_first_maxpool(with_maxpool, expected):
    assert feature_tensor_name(_graph(with_maxpool)) == expected


def test_encoder_without_a_model_uses_pixels():
    encoder = ImageEncoder()
    vector, detections = encoder(_checkerboard())
    assert (encoder.source, encoder.has_model, detections) == ("pixels", False, None)
    np.testing.assert_array_equal(vector, pixel_embedding(_checkerboard()))


def test_encoder_rejects_a_missing_model(tmp_path: Path):
    from nexus.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="no such model file"):
        ImageEncoder(tmp_path / "nope.onnx")
