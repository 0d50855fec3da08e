"""All trackers behind one interface: quality on a synthetic sequence, data kept aligned, reset, state."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nexus.detections import Detections
from nexus.errors import NexusError
from nexus.tracking import (
    TRACKERS,
    ByteTrackConfig,
    DeepSORTConfig,
    DeepSORTTracker,
    OCSORTConfig,
    OnnxReIdEmbedder,
    SORTConfig,
    SyntheticMOTSequence,
    Tracker,
    create_tracker,
    evaluate_mot,
    kalman,
)
from nexus.tracking.matching import linear_assignment


def run(tracker: Tracker, sequence: SyntheticMOTSequence) -> list[Detections]:
    if isinstance(tracker, DeepSORTTracker):
        return [tracker.update(d, sequence.render(t)) for t, d in enumerate(sequence.detections)]
    return [tracker.update(d) for d in sequence.detections]


def make(name: str, reid_onnx: Path) -> Tracker:
    embedder = OnnxReIdEmbedder(reid_onnx, input_size=(32, 64)) if name == "deepsort" else None
    return create_tracker(name, embedder)


@pytest.mark.parametrize(
    ("name", "min_mota", "min_idf1", "max_switches"),
    [
        ("bytetrack", 0.8, 0.7, 3),
        ("sort", 0.7, 0.5, 30),  # no memory across misses: many fragments, by design
        ("ocsort", 0.7, 0.7, 3),
        ("deepsort", 0.8, 0.7, 3),
    ],
)
def test_tracker_quality_on_an_easy_sequence(
    easy_sequence: SyntheticMOTSequence, reid_onnx: Path, name: str, min_mota: float, min_idf1: float,
    max_switches: int,
) -> None:  # fmt: skip
    metrics = evaluate_mot(easy_sequence.ground_truth, run(make(name, reid_onnx), easy_sequence))
    assert metrics.mota > min_mota and metrics.idf1 > min_idf1, metrics
    assert metrics.id_switches <= max_switches and metrics.hota > 0.5


@pytest.mark.parametrize("name", TRACKERS)
def test_masks_and_data_survive_tracking(name: str, reid_onnx: Path) -> None:
    tracker = make(name, reid_onnx)
    frame = np.full((100, 160, 3), 90, np.uint8)
    for step in range(5):
        boxes = np.array([[10 + step, 10, 40 + step, 50], [100, 40, 130, 90]], np.float32)
        mask = np.zeros((2, 100, 160), bool)
        mask[0, 10:50, 10 + step : 40 + step] = True
        mask[1, 40:90, 100:130] = True
        detections = Detections(
            xyxy=boxes, confidence=[0.9, 0.8], class_id=[1, 2], mask=mask,
            data={"class_name": ["rect", "tri"], "row": np.array([0, 1])},
        )  # fmt: skip
        out = tracker.update(detections, frame) if name == "deepsort" else tracker.update(detections)
    assert len(out) == 2 and out.tracker_id.tolist() == [1, 2]
    assert out.data["class_name"] == ["rect", "tri"] and out.data["row"].tolist() == [0, 1]
    assert out.class_id.tolist() == [1, 2] and out.mask is not None
    assert out.mask[0, 30, 15 + 4] and out.mask[1, 60, 110]
    np.testing.assert_array_equal(out.xyxy, boxes)  # the detector's boxes, not the filter's


@pytest.mark.parametrize("name", TRACKERS)
def test_reset_and_one_state_per_stream(
    name: str, easy_sequence: SyntheticMOTSequence, reid_onnx: Path
) -> None:
    first, second = make(name, reid_onnx), make(name, reid_onnx)
    a = run(first, easy_sequence)
    b = run(second, easy_sequence)  # a second stream's tracker is independent
    assert [d.tracker_id.tolist() for d in a] == [d.tracker_id.tolist() for d in b]
    first.reset()
    assert len(first.tracks) == 0 and first.frame_id == 0
    again = run(first, easy_sequence)
    assert [d.tracker_id.tolist() for d in again] == [d.tracker_id.tolist() for d in a]


@pytest.mark.parametrize("name", TRACKERS)
def test_empty_frames_are_fine(name: str, reid_onnx: Path) -> None:
    tracker = make(name, reid_onnx)
    frame = np.zeros((64, 64, 3), np.uint8)
    for _ in range(3):
        out = (
            tracker.update(Detections.empty(), frame)
            if name == "deepsort"
            else tracker.update(Detections.empty())
        )
        assert len(out) == 0 and out.tracker_id is not None


def test_class_aware_bytetrack_never_mixes_classes() -> None:
    from nexus.tracking import ByteTrackTracker

    tracker = ByteTrackTracker(ByteTrackConfig(class_aware=True))
    tracker.update(Detections(xyxy=[[0, 0, 20, 20]], confidence=[0.9], class_id=[0]))
    out = tracker.update(Detections(xyxy=[[1, 0, 21, 20]], confidence=[0.9], class_id=[1]))
    assert len(out) == 0  # the class-1 box cannot continue the class-0 track (and is only unconfirmed)


def test_deepsort_takes_embeddings_from_data_without_an_embedder() -> None:
    tracker = DeepSORTTracker(config=DeepSORTConfig(n_init=1))
    features = np.eye(2, dtype=np.float32)
    for step in range(3):
        boxes = [[0 + step, 0, 20 + step, 20], [50, 50, 70, 70]]
        out = tracker.update(Detections(xyxy=boxes, confidence=[0.9, 0.9], data={"embedding": features}))
    assert out.tracker_id.tolist() == [1, 2]
    with pytest.raises(ValueError, match="needs appearance"):
        DeepSORTTracker().update(Detections(xyxy=[[0, 0, 5, 5]], confidence=[0.9]))


def test_unknown_tracker_name() -> None:
    with pytest.raises(NexusError, match="unknown tracker 'kcf': choose one of sort, bytetrack"):
        create_tracker("kcf")


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: ByteTrackConfig(low_threshold=0.7, high_threshold=0.5), "low_threshold"),
        (lambda: SORTConfig(match_iou=1.5), "match_iou must be in"),
        (lambda: OCSORTConfig(delta_t=0), "delta_t >= 1"),
        (lambda: DeepSORTConfig(feature_momentum=1.0), "feature_momentum"),
        (lambda: ByteTrackConfig(new_track_threshold=5.0), r"new_track_threshold must be a score in \[0, 1"),
        (lambda: ByteTrackConfig(frame_rate=math.nan), "frame_rate a finite fps > 0, got 30 and nan"),
        (lambda: ByteTrackConfig(frame_rate=math.inf), "frame_rate a finite fps > 0, got 30 and inf"),
        (lambda: SORTConfig(min_confidence=1.5), r"min_confidence must be a score in \[0, 1\], got 1.5"),
        (lambda: SORTConfig(min_confidence=math.nan), "min_confidence must be a score"),
        (lambda: OCSORTConfig(new_track_threshold=2), "new_track_threshold must be a score"),
        (lambda: OCSORTConfig(min_confidence=-1), "min_confidence must be a score"),
        (lambda: OCSORTConfig(inertia=math.nan), "inertia must be a finite number >= 0, got nan"),
        (lambda: DeepSORTConfig(min_confidence=2), "min_confidence must be a score"),
        (lambda: DeepSORTConfig(match_iou=5), r"match_iou must be in \[0, 1\), got 5"),
        (lambda: DeepSORTConfig(gate=math.nan), "a finite gate > 0, got 30, 3, nan"),
    ],
)
def test_config_validation(factory, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        factory()


def test_vectorized_kalman_matches_one_track_at_a_time() -> None:
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 100, (6, 2))
    boxes = np.concatenate([boxes, boxes + rng.uniform(10, 50, (6, 2))], axis=1)
    mean, cov = kalman.initiate(kalman.xyxy_to_xyah(boxes))
    cov = cov + rng.uniform(0, 1, (6, 8, 8)) @ rng.uniform(0, 1, (6, 8, 8)).transpose(0, 2, 1)  # dense P
    transition = np.eye(8)
    transition[:4, 4:] = np.eye(4)
    before_mean, before_cov = mean.copy(), cov.copy()
    mean, cov = kalman.predict(mean, cov)
    np.testing.assert_allclose(mean, before_mean @ transition.T)
    off_diagonal = ~np.eye(8, dtype=bool)
    np.testing.assert_allclose(
        cov[:, off_diagonal], (transition @ before_cov @ transition.T)[:, off_diagonal], rtol=1e-12
    )  # the process noise Q is diagonal
    measured = kalman.xyxy_to_xyah(boxes + 2)
    all_mean, all_cov = kalman.update(mean, cov, measured)
    for i in range(6):
        one_mean, one_cov = kalman.update(mean[i : i + 1], cov[i : i + 1], measured[i : i + 1])
        np.testing.assert_allclose(all_mean[i], one_mean[0])
        np.testing.assert_allclose(all_cov[i], one_cov[0])
    np.testing.assert_allclose(kalman.xyah_to_xyxy(kalman.xyxy_to_xyah(boxes)), boxes)


@pytest.mark.parametrize(
    ("cost", "matches", "rows", "cols"),
    [
        ([[0.1, 0.9], [0.8, 0.95]], [[0, 0]], [1], [1]),
        ([[0.1, 0.9], [0.9, 0.2]], [[0, 0], [1, 1]], [], []),
        ([[0.9, 0.9]], [], [0], [0, 1]),
        (np.zeros((0, 3)), [], [], [0, 1, 2]),
    ],
)
def test_linear_assignment_respects_the_cost_limit(cost, matches, rows, cols) -> None:
    got, got_rows, got_cols = linear_assignment(np.asarray(cost, dtype=float), 0.5)
    assert got.tolist() == matches and got_rows.tolist() == rows and got_cols.tolist() == cols


@pytest.mark.parametrize("seed", range(6))
def test_linear_assignment_fast_path_equals_plain_lapjv(seed: int) -> None:
    import lap

    rng = np.random.default_rng(seed)
    cost = rng.uniform(0, 1, (30, 34))
    cost[rng.random(cost.shape) < 0.85] = 1.0  # sparse, like IoU costs: mostly isolated pairs
    matches, _, _ = linear_assignment(cost, 0.8)
    _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=0.8)
    expected = sorted((int(r), int(c)) for r, c in enumerate(x) if c >= 0)
    assert sorted(map(tuple, matches.tolist())) == expected


@pytest.mark.parametrize(
    ("name", "keeps_id"),
    [("bytetrack", True), ("ocsort", True), ("deepsort", True), ("sort", False)],
)
def test_identity_across_an_occlusion_gap(name: str, keeps_id: bool) -> None:
    """Two objects move steadily; one vanishes for 6 frames and reappears where motion predicts."""
    tracker = create_tracker(name)
    if isinstance(tracker, DeepSORTTracker):
        tracker.config = DeepSORTConfig(n_init=1)
    first_ids, last_ids = None, None
    for t in range(30):
        boxes = [[10 + 3 * t, 20, 40 + 3 * t, 60], [200, 10 + 2 * t, 230, 50 + 2 * t]]
        features = np.eye(2, dtype=np.float32)
        visible = [0, 1] if not 10 <= t < 16 else [1]
        detections = Detections(
            xyxy=np.array(boxes, np.float32)[visible],
            confidence=np.full(len(visible), 0.9, np.float32),
            data={"embedding": features[visible], "object": np.array(visible)},
        )
        out = tracker.update(detections)
        ids = dict(zip(out.data["object"].tolist(), out.tracker_id.tolist(), strict=True))
        if t == 5:
            first_ids = ids
        last_ids = ids
    assert first_ids is not None and last_ids is not None and last_ids[1] == first_ids[1]
    assert (last_ids[0] == first_ids[0]) is keeps_id


def test_per_stream_trackers_keep_separate_state() -> None:
    from nexus.tracking import ByteTrackTracker, PerStreamTracker

    trackers = PerStreamTracker(ByteTrackTracker)
    a = Detections(xyxy=[[0, 0, 10, 10], [50, 50, 60, 60]], confidence=[0.9, 0.9])
    b = Detections(xyxy=[[100, 100, 120, 120]], confidence=[0.9])
    for _ in range(3):
        assert trackers.update("gate", a).tracker_id.tolist() == [1, 2]
        assert trackers.update("dock", b).tracker_id.tolist() == [1]
    trackers.reset("gate")
    assert trackers.trackers["gate"].frame_id == 0 and trackers.trackers["dock"].frame_id == 3
    trackers.remove("dock")
    assert list(trackers.trackers) == ["gate"]
