"""The shared test detector must see the shapes: tests that compare two inference paths (serving and
``Detector``, scaled and whole decoding, transformer and predictor) only mean something when its
detections follow the image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from nexus.datasets import YoloDataset
from nexus.inference.detector import Detector
from nexus.vision.nms import box_iou
from nexus.vision.postprocess import PostprocessOptions


def test_detect_fixture_finds_the_validation_shapes(detect_onnx, sample_dataset):
    dataset = YoloDataset.load(sample_dataset)
    detector = Detector.from_path(detect_onnx)
    found = shapes = 0
    for path in dataset.image_paths("val"):
        truth = dataset.read_annotations(path)
        (detections,) = detector.predict_arrays(
            [cv2.imread(str(path))], PostprocessOptions(conf_threshold=0.1)
        )
        shapes += len(truth)
        if len(detections):  # a shape counts once, found by a box of its class at IoU >= 0.5
            same_class = truth.class_id[:, None] == detections.class_id[None, :]
            found += int(((box_iou(truth.xyxy, detections.xyxy) >= 0.5) & same_class).any(axis=1).sum())
    assert shapes > 0
    assert found >= 0.1 * shapes, f"{found} of {shapes} shapes found at conf 0.1 and IoU 0.5"


@pytest.mark.parametrize("model", ["detect_onnx", "segment_onnx"])
def test_fixture_scores_shapes_above_an_empty_image(model, val_images, request):
    detector = Detector.from_path(request.getfixturevalue(model))
    options = PostprocessOptions(conf_threshold=0.001)
    images = [cv2.imread(str(path)) for path in val_images]
    blank = np.full_like(images[0], 114)
    best = [float(d.confidence.max(initial=0.0)) for d in detector.predict_arrays(images, options)]
    (on_blank,) = detector.predict_arrays([blank], options)
    assert float(on_blank.confidence.max(initial=0.0)) < 0.05 < float(np.median(best))
