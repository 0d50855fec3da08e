"""MOTChallenge text files: ``frame,id,x,y,w,h,conf,class,visibility[,z]`` with 1-based frames."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from nexus.detections import Detections
from nexus.errors import NexusError

MAX_FRAME = 1_000_000  # read_mot holds one entry per frame up to the last one


class MOTFormatError(NexusError):
    """A MOTChallenge file is missing or malformed."""


def read_mot(
    path: str | Path, *, min_confidence: float | None = None, frames: int | None = None
) -> list[Detections]:
    """Read a MOTChallenge file into one ``Detections`` per frame (index 0 is frame 1).

    Ground-truth files (column 7 is the "consider" flag 0/1) and detection/result files (column 7 is
    a score, id -1 for detections) both load; ``tracker_id`` is set when ids are not all -1, and
    ``class_id`` comes from column 8 when present (MOT class ids, 1 = pedestrian, are kept as is).

    Args:
        path: the text file.
        min_confidence: drop rows whose column 7 is below this (e.g. 0.5 skips ignored gt rows).
        frames: length of the output list; the last frame in the file when omitted.

    Example:
        >>> per_frame = read_mot("MOT17-02/det/det.txt")  # doctest: +SKIP
        >>> per_frame[0].xyxy.shape  # doctest: +SKIP
        (12, 4)
    """
    file = Path(path)
    if not file.is_file():
        raise MOTFormatError("no such file", path=file)
    rows: list[list[float]] = []
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(" ", "").split(",") if "," in line else line.split()
        try:
            values = [float(p) for p in parts]
        except ValueError as error:
            raise MOTFormatError(f"line {number}: not numbers ({line[:60]!r})", path=file) from error
        if len(values) < 6:
            raise MOTFormatError(
                f"line {number}: expected frame,id,x,y,w,h[,conf,...], got {len(values)} fields", path=file
            )
        if not all(math.isfinite(v) for v in values):
            raise MOTFormatError(f"line {number}: NaN or infinite value ({line[:60]!r})", path=file)
        if values[0] < 1 or values[0] != int(values[0]) or values[0] > MAX_FRAME:
            raise MOTFormatError(
                f"line {number}: frame numbers are whole numbers from 1 to {MAX_FRAME:,}, got {values[0]:g}",
                path=file,
            )
        if values[4] < 0 or values[5] < 0:
            raise MOTFormatError(f"line {number}: negative box width or height ({line[:60]!r})", path=file)
        rows.append(([*values, 1.0, -1.0, -1.0])[:9])
    table = np.array(rows, dtype=np.float64).reshape(-1, 9)
    if min_confidence is not None:
        table = table[table[:, 6] >= min_confidence]
    frame_numbers = table[:, 0].astype(np.int64)
    total = frames if frames is not None else (int(frame_numbers.max()) if len(table) else 0)
    has_ids = bool(len(table)) and bool((table[:, 1] >= 0).any())
    has_class = bool(len(table)) and bool((table[:, 7] >= 0).any())
    order = np.argsort(frame_numbers, kind="stable")
    table, frame_numbers = table[order], frame_numbers[order]
    bounds = np.searchsorted(frame_numbers, np.arange(1, total + 2))
    out = []
    for t in range(total):
        chunk = table[bounds[t] : bounds[t + 1]]
        xyxy = np.concatenate([chunk[:, 2:4], chunk[:, 2:4] + chunk[:, 4:6]], axis=1)
        out.append(
            Detections(
                xyxy=xyxy,
                confidence=chunk[:, 6],
                class_id=chunk[:, 7].astype(np.int64) if has_class else None,
                tracker_id=chunk[:, 1].astype(np.int64) if has_ids else None,
            )
        )
    return out


def mot_lines(frame: int, detections: Detections) -> list[str]:
    """MOTChallenge lines of one frame (``frame`` is 1-based); id -1 when untracked."""
    lines = []
    ids = detections.tracker_id if detections.tracker_id is not None else np.full(len(detections), -1)
    conf = detections.confidence if detections.confidence is not None else np.ones(len(detections))
    for i in range(len(detections)):
        x1, y1, x2, y2 = (float(v) for v in detections.xyxy[i])
        lines.append(
            f"{frame},{int(ids[i])},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{float(conf[i]):.4f},"
            f"{int(detections.class_id[i])},-1"
        )
    return lines


def write_mot(path: str | Path, frames: Sequence[Detections] | Iterable[tuple[int, Detections]]) -> Path:
    """Write per-frame detections/tracks as a MOTChallenge file.

    Args:
        path: output file (folders are created).
        frames: a list whose item ``t`` is frame ``t + 1``, or ``(frame_number, detections)`` pairs.

    Example:
        >>> write_mot("tracks.txt", [tracker.update(d) for d in per_frame])  # doctest: +SKIP
    """
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("w") as handle:
        for position, item in enumerate(frames):
            number, detections = item if isinstance(item, tuple) else (position + 1, item)
            for line in mot_lines(number, detections):
                handle.write(line + "\n")
    return file
