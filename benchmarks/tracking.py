"""Benchmark: tracker-only speed and accuracy of nexus trackers vs roboflow ``trackers`` and supervision.

All trackers get identical detections from one seeded synthetic sequence (default 50 objects in view
per frame, 1280x720, 600 frames, 5% misses, ~2 false positives per frame); the script prints each
tracker's best-of-rounds frames/s on one core and MOTA / IDF1 / HOTA (nexus.tracking.evaluate_mot),
then the speed and accuracy ratios of nexus ByteTrack against the peers' ByteTrack.

Usage:
    .venv/bin/python benchmarks/tracking.py                 # 50 objects, 600 frames
    .venv/bin/python benchmarks/tracking.py --objects 20 --frames 300
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus.detections import Detections


def _one_core() -> None:
    """Pin BLAS/OpenMP to one thread before NumPy is imported (the target is per core)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _time(
    step: Callable[[Detections], Detections], frames: list[Detections]
) -> tuple[float, list[Detections]]:
    start = time.perf_counter()
    out = [step(d) for d in frames]
    return len(frames) / (time.perf_counter() - start), out


def _supervision_adapter(tracker) -> Callable[[Detections], Detections]:
    import numpy as np
    import supervision as sv

    from nexus.detections import Detections

    def step(d: Detections) -> Detections:
        result = (
            tracker.update_with_detections(
                sv.Detections(xyxy=d.xyxy, confidence=d.confidence, class_id=d.class_id)
            )
            if hasattr(tracker, "update_with_detections")
            else tracker.update(sv.Detections(xyxy=d.xyxy, confidence=d.confidence, class_id=d.class_id))
        )
        ids = result.tracker_id if result.tracker_id is not None else np.zeros(0, np.int64)
        keep = ids >= 0
        return Detections(xyxy=result.xyxy[keep], confidence=result.confidence[keep], tracker_id=ids[keep])

    return step


def main() -> None:
    _one_core()
    from nexus.tracking import (
        ByteTrackTracker,
        OCSORTTracker,
        SORTTracker,
        SyntheticMOTConfig,
        evaluate_mot,
        generate_mot_sequence,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per tracker; the best counts")
    args = parser.parse_args()
    config = SyntheticMOTConfig(
        frames=args.frames, objects=args.objects, width=1280, height=720, box_size=(24, 72),
        max_speed=4.0, births=False, false_positives=2.0, miss_rate=0.05, seed=args.seed,
    )  # fmt: skip
    sequence = generate_mot_sequence(config)
    frames = sequence.detections
    print(
        f"sequence: {args.frames} frames, {args.objects} objects, "
        f"{sum(map(len, frames)) / len(frames):.1f} detections/frame"
    )

    candidates: dict[str, Callable[[], Callable[[Detections], Detections]]] = {
        "nexus ByteTrack": lambda: ByteTrackTracker().update,
        "nexus SORT": lambda: SORTTracker().update,
        "nexus OC-SORT": lambda: OCSORTTracker().update,
    }
    try:
        import trackers

        candidates["trackers ByteTrack"] = lambda: _supervision_adapter(trackers.ByteTrackTracker())
        candidates["trackers SORT"] = lambda: _supervision_adapter(trackers.SORTTracker())
        candidates["trackers OC-SORT"] = lambda: _supervision_adapter(trackers.OCSORTTracker())
    except ImportError:
        print("roboflow trackers not installed: skipped")
    try:
        import supervision as sv

        if hasattr(sv, "ByteTrack"):  # supervision < 0.27 shipped ByteTrack; newer ones moved it to trackers
            candidates["supervision ByteTrack"] = lambda: _supervision_adapter(sv.ByteTrack())
        else:
            print(f"supervision {sv.__version__} has no ByteTrack (moved to the trackers package): skipped")
    except ImportError:
        print("supervision not installed: skipped")

    results = {}
    for name, factory in candidates.items():
        step = factory()
        step(frames[0])  # warm-up (imports, first allocation)
        fps, out = 0.0, []
        for _ in range(args.rounds):  # a fresh tracker each round; the best round resists machine load
            round_fps, out = _time(factory(), frames)
            fps = max(fps, round_fps)
        metrics = evaluate_mot(sequence.ground_truth, out)
        results[name] = (fps, metrics)
        print(
            f"{name:<24} {fps:9.0f} frames/s   "
            f"MOTA {metrics.mota:.4f}  IDF1 {metrics.idf1:.4f}  HOTA {metrics.hota:.4f}"
        )

    ours_fps, ours = results["nexus ByteTrack"]
    print(f"target: >= 1,500 frames/s -> {'met' if ours_fps >= 1500 else 'NOT met'} ({ours_fps:.0f})")
    for peer in ("trackers ByteTrack", "supervision ByteTrack"):
        if peer in results:
            fps, metrics = results[peer]
            print(
                f"nexus ByteTrack vs {peer}: speed x{ours_fps / fps:.2f}, "
                f"MOTA {ours.mota - metrics.mota:+.4f}, IDF1 {ours.idf1 - metrics.idf1:+.4f}"
            )


if __name__ == "__main__":
    main()
