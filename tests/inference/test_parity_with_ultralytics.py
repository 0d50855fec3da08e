"""On the same weights our detections equal Ultralytics predict (IoU > 0.99, same classes, scores 1e-3)."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from ultralytics import YOLO

from nexus.inference.detector import Detector
from nexus.vision.nms import box_iou


@pytest.fixture(scope="module")
def parity_images(val_images, tmp_path_factory):
    """Validation images plus non-square resizes, so the rectangular letterbox path is exercised."""
    folder = tmp_path_factory.mktemp("parity-images")
    paths = list(val_images[:8])
    for index, path in enumerate(val_images[:4]):
        image = cv2.imread(str(path))
        size = [(150, 96), (96, 170), (333, 201), (64, 64)][index]
        target = folder / f"resized-{index}.png"
        cv2.imwrite(str(target), cv2.resize(image, size))
        paths.append(target)
    return paths


@pytest.fixture(scope="module")
def ultralytics_onnx(detect_weights, tmp_path_factory):
    """An ONNX file exported by Ultralytics itself (not through nexus)."""
    staged = tmp_path_factory.mktemp("ultralytics-export") / "weights.pt"
    shutil.copyfile(detect_weights, staged)
    return YOLO(str(staged)).export(format="onnx", dynamic=True, opset=17, verbose=False)


def assert_same(reference, ours, check_masks):
    boxes = reference.boxes
    assert len(boxes) == len(ours), f"Ultralytics found {len(boxes)} objects, we found {len(ours)}"
    if not len(ours):
        return 0
    iou = np.diag(box_iou(boxes.xyxy.numpy(), ours.xyxy))
    assert iou.min() > 0.99
    assert boxes.cls.numpy().astype(int).tolist() == ours.class_id.tolist()
    np.testing.assert_allclose(boxes.conf.numpy(), ours.confidence, atol=1e-3)
    if check_masks:
        theirs = reference.masks.data.numpy() > 0.5
        intersection = (theirs & ours.mask).sum(axis=(1, 2))
        union = (theirs | ours.mask).sum(axis=(1, 2))
        assert (intersection / np.maximum(union, 1)).min() > 0.95
    return len(ours)


@pytest.mark.parametrize("conf", [0.001, 0.25])
@pytest.mark.parametrize(
    "model_fixture", ["detect_weights", "detect_onnx", "ultralytics_onnx", "segment_weights", "segment_onnx"]
)
def test_detections_equal_ultralytics_predict(request, model_fixture, conf, parity_images):
    model_path = request.getfixturevalue(model_fixture)
    detector = Detector.from_path(model_path)
    reference_model = YOLO(str(model_path), task=detector.task)
    segment = detector.task == "segment"
    # Ultralytics defaults ONNX inputs to 640 px; we default to the size recorded in the model (as
    # Ultralytics does for .pt weights), so the size is given explicitly to compare like with like.
    imgsz = detector.metadata.imgsz[0]
    total = 0
    for path in parity_images:
        reference = reference_model.predict(
            str(path), conf=conf, imgsz=imgsz, verbose=False, retina_masks=True
        )[0]
        ours = detector.predict(str(path), conf=conf, imgsz=imgsz)[0]
        total += assert_same(reference, ours, check_masks=segment)
    if conf < 0.01:
        assert total > 0, "the fixture model should produce detections at a low threshold"


def test_ultralytics_onnx_metadata_is_read(ultralytics_onnx, detect_weights):
    from_onnx = Detector.from_path(ultralytics_onnx).metadata
    from_pt = Detector.from_path(detect_weights).metadata
    assert from_onnx.names == from_pt.names
    assert from_onnx.imgsz == from_pt.imgsz == (96, 96)
    assert from_onnx.stride == 32 and from_onnx.task == "detect"
