import numpy as np
import pytest
import torch
import torchvision

from nexus.vision.nms import batched_nms, box_iou, nms


def random_boxes(rng, count, size=200.0):
    xy = rng.uniform(0, size, (count, 2))
    wh = rng.uniform(2, size / 3, (count, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("iou_threshold", [0.3, 0.5, 0.7])
def test_nms_keeps_exactly_what_torchvision_keeps(seed, iou_threshold):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 300)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou_threshold).numpy()
    assert nms(boxes, scores, iou_threshold).tolist() == expected.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_batched_nms_matches_torchvision_batched(seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 200)
    scores = rng.uniform(0, 1, 200).astype(np.float32)
    classes = rng.integers(0, 4, 200)
    expected = torchvision.ops.batched_nms(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.5
    ).numpy()
    assert sorted(batched_nms(boxes, scores, classes, 0.5).tolist()) == sorted(expected.tolist())


def test_overlapping_boxes_of_different_classes_both_survive_unless_agnostic():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    classes = np.array([0, 1])
    assert sorted(batched_nms(boxes, scores, classes, 0.5).tolist()) == [0, 1]
    assert batched_nms(boxes, scores, classes, 0.5, agnostic=True).tolist() == [0]


def test_empty_input_and_iou_matrix():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []
    iou = box_iou(np.array([[0, 0, 2, 2]], np.float32), np.array([[1, 0, 3, 2], [5, 5, 6, 6]], np.float32))
    assert iou.tolist() == [[pytest.approx(1 / 3), 0.0]]
