"""Association helpers: IoU matrices and Hungarian assignment (``lap``)."""

from __future__ import annotations

import lap
import numpy as np


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes -> ``(N, M)``; 0 for empty boxes.

    Example:
        >>> iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]])).round(3).tolist()
        [[0.333]]
    """
    if not len(boxes_a) or not len(boxes_b):
        return np.zeros((len(boxes_a), len(boxes_b)))
    a = np.asarray(boxes_a, dtype=np.float64)
    b = np.asarray(boxes_b, dtype=np.float64)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def linear_assignment(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost matching with pairs costing more than ``max_cost`` left unmatched.

    Same result as ``lap.lapjv(cost, extend_cost=True, cost_limit=max_cost)``; a row and a column that
    are each other's only candidate are matched directly (leaving both unmatched would cost
    ``max_cost``), and only the ambiguous rest goes to the solver.

    Returns:
        ``matches`` ``(K, 2)`` of (row, column) sorted by row, unmatched rows, unmatched columns.

    Example:
        >>> m, r, c = linear_assignment(np.array([[0.1, 0.9], [0.8, 0.95]]), 0.5)
        >>> m.tolist(), r.tolist(), c.tolist()
        ([[0, 0]], [1], [1])
    """
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return np.empty((0, 2), dtype=np.int64), np.arange(rows), np.arange(cols)
    valid = cost <= max_cost  # inf and nan are never valid
    row_count = valid.sum(axis=1)
    col_count = valid.sum(axis=0)
    best_col = valid.argmax(axis=1)
    isolated = (row_count == 1) & (col_count[best_col] == 1)
    match_rows = np.flatnonzero(isolated)
    match_cols = best_col[match_rows]
    busy_rows = np.flatnonzero((row_count > 0) & ~isolated)
    if len(busy_rows):
        busy_cols = np.flatnonzero(valid[busy_rows].any(axis=0))
        sub = cost[np.ix_(busy_rows, busy_cols)]
        sub = np.where(np.isfinite(sub), sub, max_cost + 1.0)
        _, x, _ = lap.lapjv(sub, extend_cost=True, cost_limit=max_cost)
        solved = np.flatnonzero(x >= 0)
        match_rows = np.concatenate([match_rows, busy_rows[solved]])
        match_cols = np.concatenate([match_cols, busy_cols[x[solved]]])
        order = np.argsort(match_rows, kind="stable")
        match_rows, match_cols = match_rows[order], match_cols[order]
    row_free = np.ones(rows, dtype=bool)
    col_free = np.ones(cols, dtype=bool)
    row_free[match_rows] = False
    col_free[match_cols] = False
    matches = np.empty((len(match_rows), 2), dtype=np.int64)
    matches[:, 0], matches[:, 1] = match_rows, match_cols
    return matches, np.flatnonzero(row_free), np.flatnonzero(col_free)
