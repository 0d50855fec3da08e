import numpy as np
import pytest

from nexus.detections import Detections


def make(n=3, with_mask=False):
    xyxy = np.array([[0, 0, 10, 10], [5, 5, 20, 25], [1, 2, 3, 4]][:n], np.float32)
    mask = None
    if with_mask:
        mask = np.zeros((n, 30, 30), bool)
        for i, (x1, y1, x2, y2) in enumerate(xyxy.astype(int)):
            mask[i, y1:y2, x1:x2] = True
    return Detections(
        xyxy=xyxy,
        confidence=np.linspace(0.9, 0.5, n),
        class_id=np.arange(n),
        mask=mask,
        data={"note": [f"n{i}" for i in range(n)]},
    )


def test_indexing_slicing_and_boolean_masks_keep_fields_aligned():
    detections = make(with_mask=True)
    picked = detections[np.array([True, False, True])]
    assert len(picked) == 2
    assert picked.class_id.tolist() == [0, 2]
    assert picked.data["note"] == ["n0", "n2"]
    assert picked.mask.shape == (2, 30, 30)
    assert detections[1].xyxy.tolist() == [[5, 5, 20, 25]]
    assert [len(d) for d in detections] == [1, 1, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(xyxy=np.zeros((2, 3))), "shape"),
        (dict(xyxy=np.zeros((2, 4)), confidence=[0.1]), "confidence"),
        (dict(xyxy=np.zeros((2, 4)), data={"x": [1]}), "data"),
        (dict(xyxy=np.zeros((1, 4)), mask=np.zeros((1, 4), bool)), "mask"),
    ],
)
def test_inconsistent_fields_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Detections(**kwargs)


@pytest.mark.parametrize("with_mask", [False, True])
def test_coco_round_trip(with_mask):
    detections = make(with_mask=with_mask)
    entries = detections.to_coco(image_id=7, category_ids={0: 1, 1: 2, 2: 3})
    assert entries[1]["bbox"] == [5.0, 5.0, 15.0, 20.0]
    assert [e["category_id"] for e in entries] == [1, 2, 3]
    assert all(e["image_id"] == 7 for e in entries)
    back = Detections.from_coco(entries, class_ids={1: 0, 2: 1, 3: 2}, image_shape=(30, 30))
    np.testing.assert_allclose(back.xyxy, detections.xyxy)
    np.testing.assert_allclose(back.confidence, detections.confidence, rtol=1e-6)
    assert back.class_id.tolist() == detections.class_id.tolist()
    if with_mask:
        assert np.array_equal(back.mask, detections.mask)


def test_ground_truth_form_has_ids_and_no_score():
    gt = Detections(xyxy=[[0, 0, 4, 4], [1, 1, 2, 2]], class_id=[0, 1])
    entries = gt.to_coco(image_id=1, start_annotation_id=10)
    assert [e["id"] for e in entries] == [10, 11]
    assert all("score" not in e and e["iscrowd"] == 0 for e in entries)
    assert Detections.from_coco(entries).confidence is None


def test_merge_empty_area_and_class_names():
    merged = Detections.merge([make(2), Detections.empty(), make(1)])
    assert len(merged) == 3
    assert merged.data["note"] == ["n0", "n1", "n0"]
    assert merged.area.tolist() == [100.0, 300.0, 100.0]
    named = merged.with_class_names({0: "circle", 1: "square"})
    assert named.class_name == ["circle", "square", "circle"]
    assert len(Detections.from_coco([])) == 0
