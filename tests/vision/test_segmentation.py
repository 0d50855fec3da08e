"""Masks from prototypes equal Ultralytics' ``process_mask_native`` pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ultralytics.utils.ops import process_mask_native

from nexus.vision.letterbox import letterbox_geometry
from nexus.vision.segmentation import masks_from_prototypes


@pytest.mark.parametrize(
    ("original_shape", "input_shape", "auto"),
    [
        ((64, 64), (96, 96), False),  # smaller than the input: the logits are never upsampled
        ((480, 640), (160, 160), False),  # padding top and bottom
        ((333, 201), (96, 96), False),  # odd sizes: padding that needs an upsampling of 2 or 4
        ((96, 170), (96, 96), True),  # minimum rectangle
        ((721, 1280), (640, 640), False),
    ],
)
def test_masks_equal_ultralytics_process_mask_native(original_shape, input_shape, auto):
    geometry = letterbox_geometry(original_shape, input_shape, auto=auto)
    input_h, input_w = geometry.input_shape
    rng = np.random.default_rng(3)
    protos = rng.normal(size=(32, input_h // 4, input_w // 4)).astype(np.float32)
    # small coefficients keep many logits near 0, where any difference in resampling flips pixels
    coefficients = (rng.normal(size=(12, 32)) * 0.05).astype(np.float32)
    height, width = original_shape
    corners = rng.uniform(0, 1, (12, 2, 2)) * [width, height]
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1) + 1], axis=1).astype(np.float32)
    boxes[0] = [0, 0, width, height]
    ours = masks_from_prototypes(protos, coefficients, boxes, geometry)
    theirs = process_mask_native(
        torch.from_numpy(protos), torch.from_numpy(coefficients), torch.from_numpy(boxes), original_shape
    ).numpy()
    assert ours.shape == theirs.shape == (12, height, width)
    assert ours[0].any() and not ours[0].all()
    np.testing.assert_array_equal(ours, theirs.astype(bool))
