"""``detect_drift``: the Evidently report, the drift decision, its files and its errors."""

from __future__ import annotations

import json
import math

import pytest

from nexus.drift import STAT_COLUMNS, DriftConfig, DriftResult, detect_drift
from nexus.drift.image_stats import BOX_COLUMNS, PIXEL_COLUMNS, PREDICTION_COLUMNS
from nexus.errors import DatasetError, NexusError


@pytest.fixture(scope="module")
def same(drift_data, tmp_path_factory) -> DriftResult:
    """Reference train split vs. a dataset from the same generator (another seed), with files."""
    out = tmp_path_factory.mktemp("drift-out")
    return detect_drift(drift_data["reference"], drift_data["same"], out_dir=out)


def test_same_distribution_is_not_drift(same):
    assert same.drifted is False
    assert same.share < same.drift_share and len(same.drifted_columns) <= 1
    assert same.embedding_drifted is False and 0.0 <= same.embedding_score <= 1.0
    assert (same.reference_count, same.current_count) == (24, 30)
    assert list(same.columns) == [*PIXEL_COLUMNS, *BOX_COLUMNS]
    assert same.embedding_source == "pixels"


def test_report_files(same):
    page = same.html_path.read_text(encoding="utf-8")
    assert same.html_path.name == "drift_report.html"
    assert "Dataset Drift is NOT detected" in page and "Share of Drifted Columns: Less 0.250" in page
    assert "Drift in embeddings 'image_embedding'" in page  # Evidently's embedding section
    assert '<div id="nexus-drift-summary"' in page and "<h2>No drift</h2>" in page
    summary = json.loads(same.json_path.read_text(encoding="utf-8"))
    assert summary["drifted"] is False and summary["drift_share"] == 0.25
    assert set(summary["columns"]) == set(same.columns)
    assert summary["columns"]["sharpness"]["method"] == "K-S p_value"
    assert summary["embedding_score"] == pytest.approx(same.embedding_score)
    names = [test["name"] for test in summary["evidently_tests"]]
    assert "Value Drift for column brightness" in names and any("Share of Drifted" in n for n in names)


@pytest.mark.parametrize(
    ("shift", "expected_columns", "embedding_drift"),
    [
        ("dark", {"brightness", "contrast", "mean_red", "mean_green", "mean_blue"}, True),
        ("blur", {"sharpness"}, True),  # 1 of 11 columns: the embedding test alone flags it
        ("small", {"width", "height"}, None),  # a borderline AUC either way; the columns flag it
    ],
)
def test_shifted_images_drift(drift_data, shift, expected_columns, embedding_drift):
    result = detect_drift(drift_data["reference"], drift_data[shift])
    assert result.drifted is True
    assert result.drifted is (result.share >= result.drift_share or result.embedding_drifted)
    assert expected_columns <= set(result.drifted_columns)
    assert not {"box_count", "box_area_mean", "aspect_ratio"} & set(
        result.drifted_columns
    )  # labels unchanged
    if embedding_drift is not None:
        assert result.embedding_drifted is embedding_drift and result.embedding_score > 0.75
    assert result.html_path is None and result.json_path is None


def test_without_embeddings_a_blur_needs_the_share(drift_data):
    config = DriftConfig(embedding_drift=False, stattest_threshold=0.01)
    result = detect_drift(drift_data["reference"], drift_data["blur"], config=config)
    assert result.embedding_score is None and result.embedding_drifted is False
    assert {column.threshold for column in result.columns.values()} == {0.01}
    assert result.drifted_columns == ["sharpness"]  # 1 of 11 columns: below the 0.25 share
    assert result.drifted is False


def test_a_plain_folder_compares_pixel_columns_only(drift_data, image_folder):
    result = detect_drift(drift_data["reference"], image_folder)
    assert list(result.columns) == list(PIXEL_COLUMNS)
    assert result.drifted is False and "image folder" in result.current


def test_corrupt_images_are_skipped_and_counted(drift_data, image_folder, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    for path in sorted(image_folder.glob("*.jpg"))[:8]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "zz-truncated.jpg").write_bytes((folder / path.name).read_bytes()[:40])
    result = detect_drift(drift_data["reference"], folder, config=DriftConfig(embedding_drift=False))
    assert result.current_count == 8 and len(result.skipped) == 1 and "zz-truncated.jpg" in result.skipped[0]
    assert "skipped 1 unreadable images" in result.summary()


@pytest.mark.parametrize(
    ("current", "message"),
    [
        ("missing", "no such dataset or image folder"),
        ("empty", "no image files"),
        ("three", "only 3 readable images in image folder"),
        ("broken", "only 0 readable images"),
    ],
)
def test_bad_current_input(drift_data, image_folder, tmp_path, current, message):
    folder = tmp_path / current
    if current != "missing":
        folder.mkdir()
    if current == "three":
        for path in sorted(image_folder.glob("*.jpg"))[:3]:
            (folder / path.name).write_bytes(path.read_bytes())
    if current == "broken":
        for index in range(6):
            (folder / f"{index}.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError, match=message) as caught:
        detect_drift(drift_data["reference"], folder)
    assert str(folder) in str(caught.value)


def test_too_few_reference_images(drift_data):
    with pytest.raises(
        DatasetError, match=r"only 6 readable images .*\(split val\); drift needs at least 10"
    ):
        detect_drift(
            drift_data["reference"], drift_data["same"], split="val", config=DriftConfig(min_images=10)
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drift_share": 0.0}, "drift_share=0.0: set it above 0 and at most 1"),
        ({"drift_share": 1.5}, "drift_share=1.5: set it above 0 and at most 1"),
        ({"stattest_threshold": -0.1}, "stattest_threshold=-0.1: set it above 0 and below 1"),
        ({"stattest_threshold": 1.0}, "stattest_threshold=1.0: set it above 0 and below 1"),
        ({"stattest_threshold": math.inf}, "stattest_threshold=inf: set it above 0 and below 1"),
        ({"embedding_auc_threshold": 0.3}, r"embedding_auc_threshold=0.3: set it in \[0.5, 1\)"),
        ({"min_images": 1}, "min_images=1: set min_images to 2 or more"),
        ({"confidence": 2.0}, "confidence=2.0: set it between 0 and 1"),
        ({"max_images": 3}, "max_images=3: set it to None or >= min_images"),
    ],
)
def test_config_is_validated(kwargs, message):
    with pytest.raises(NexusError, match=message):
        DriftConfig(**kwargs)


def test_a_model_adds_prediction_columns_and_its_features(drift_data, detect_onnx):
    result = detect_drift(drift_data["reference"], drift_data["dark"], model=detect_onnx)
    assert list(result.columns) == list(STAT_COLUMNS)
    assert set(PREDICTION_COLUMNS) <= set(result.columns)
    assert result.embedding_source.startswith("onnx:") and result.embedding_source.endswith("output_0")
    assert result.drifted is True and result.embedding_drifted is True
    same = detect_drift(drift_data["reference"], drift_data["same"], model=detect_onnx)
    assert same.drifted is False and same.embedding_drifted is False
