import numpy as np
import pytest
import torch
from ultralytics.utils.nms import non_max_suppression

from nexus.vision.postprocess import PostprocessOptions, decode_predictions


def head_output(seed, batch=2, classes=3, extra=0, anchors=500):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 160, (batch, 2, anchors))
    wh = rng.uniform(4, 60, (batch, 2, anchors))
    scores = rng.beta(0.3, 3, (batch, classes, anchors))
    coefficients = rng.normal(0, 1, (batch, extra, anchors))
    return np.concatenate([xy, wh, scores, coefficients], axis=1).astype(np.float32)


CASES = [
    dict(conf_threshold=0.25, iou_threshold=0.7),
    dict(conf_threshold=0.001, iou_threshold=0.7, max_detections=300),
    dict(conf_threshold=0.1, iou_threshold=0.45, max_detections=5),
    dict(conf_threshold=0.1, iou_threshold=0.5, classes=(1,)),
    dict(conf_threshold=0.1, iou_threshold=0.5, agnostic=True),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("extra", [0, 32])
def test_decode_matches_ultralytics_non_max_suppression(case, extra):
    predictions = head_output(seed=len(str(case)) + extra, extra=extra)
    options = PostprocessOptions(**case)
    ours = decode_predictions(predictions, num_classes=3, options=options)
    reference = non_max_suppression(
        torch.from_numpy(predictions),
        options.conf_threshold,
        options.iou_threshold,
        classes=list(options.classes) if options.classes else None,
        agnostic=options.agnostic,
        max_det=options.max_detections,
        nc=3,
    )
    for mine, theirs in zip(ours, reference, strict=True):
        assert mine.shape == tuple(theirs.shape)
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("bad", [dict(conf_threshold=1.5), dict(iou_threshold=-0.1), dict(max_detections=0)])
def test_options_reject_out_of_range_values(bad):
    with pytest.raises(ValueError):
        PostprocessOptions(**bad)
