import numpy as np
import pytest
import torch
from ultralytics.data.augment import LetterBox
from ultralytics.utils.ops import scale_boxes

from nexus.vision.letterbox import letterbox, letterbox_batch

SHAPES = [(480, 640), (640, 480), (100, 100), (37, 211), (720, 1280), (1, 300), (96, 128)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("new_shape", [64, 160, 640, (320, 192)])
@pytest.mark.parametrize("auto", [False, True])
def test_letterbox_is_pixel_identical_to_ultralytics(shape, new_shape, auto):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    ours, geometry = letterbox(image, new_shape, auto=auto, stride=32)
    reference = LetterBox(new_shape, auto=auto, stride=32)(image=image)
    assert ours.shape == reference.shape
    assert np.array_equal(ours, reference)
    assert geometry.input_shape == reference.shape[:2]


@pytest.mark.parametrize("shape", SHAPES)
def test_boxes_map_back_like_ultralytics_scale_boxes(shape):
    image = np.zeros((*shape, 3), np.uint8)
    _, geometry = letterbox(image, 160, auto=True)
    rng = np.random.default_rng(1)
    boxes = np.sort(rng.uniform(0, 160, (20, 4)).astype(np.float32).reshape(20, 2, 2), axis=1).reshape(20, 4)
    boxes = boxes[:, [0, 2, 1, 3]]
    reference = scale_boxes(geometry.input_shape, torch.from_numpy(boxes.copy()), shape).numpy()
    np.testing.assert_allclose(geometry.boxes_to_original(boxes), reference, rtol=0, atol=1e-4)


def test_batch_is_rgb_chw_scaled_and_square_when_shapes_differ():
    images = [np.full((50, 80, 3), (10, 20, 30), np.uint8), np.zeros((80, 50, 3), np.uint8)]
    batch, geometries = letterbox_batch(images, 64, auto=True)
    assert batch.shape == (2, 3, 64, 64) and batch.dtype == np.float32
    top, left = geometries[0].top, geometries[0].left
    assert batch[0, :, top + 1, left + 1].tolist() == pytest.approx([30 / 255, 20 / 255, 10 / 255])
    assert batch[0, 0, 0, 0] == pytest.approx(114 / 255)


def test_batch_uses_minimum_rectangle_when_shapes_agree():
    images = [np.zeros((50, 80, 3), np.uint8)] * 3
    batch, _ = letterbox_batch(images, 64, auto=True, dtype=np.float16)
    assert batch.shape == (3, 3, 64, 64) or batch.shape[2] < 64
    assert batch.dtype == np.float16


@pytest.mark.parametrize("auto", [False, True])
def test_images_decoded_smaller_letterbox_with_the_geometry_of_their_full_size(auto):
    """``original_shapes``: boxes map back to the full images, and the minimum rectangle follows
    the full shapes (a half-size image letterboxes exactly as its full-size self)."""
    full = [np.full((400, 640, 3), 90, np.uint8), np.full((400, 640, 3), 30, np.uint8)]
    halves = [image[::2, ::2] for image in full]
    want_batch, want = letterbox_batch(full, 160, auto=auto)
    got_batch, got = letterbox_batch(halves, 160, auto=auto, original_shapes=[(400, 640), (400, 640)])
    assert got == want and got[0].original_shape == (400, 640)
    np.testing.assert_array_equal(got_batch, want_batch)
    box = np.array([[10.0, 20.0, 100.0, 90.0]], np.float32)
    np.testing.assert_allclose(got[0].boxes_to_original(box), want[0].boxes_to_original(box))


def test_original_shapes_must_match_the_images():
    with pytest.raises(ValueError, match="1 original shapes for 2 images"):
        letterbox_batch([np.zeros((8, 8, 3), np.uint8)] * 2, 32, original_shapes=[(16, 16)])
