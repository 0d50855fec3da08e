"""A constant-velocity Kalman filter over boxes, vectorized over all tracks at once (NumPy).

State per track: ``[cx, cy, a, h, vcx, vcy, va, vh]`` (centre, aspect ratio w/h, height and their
velocities), the parametrization of DeepSORT and ByteTrack; noise scales with the box height.
"""

from __future__ import annotations

import numpy as np

_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160
CHI2_95_4DOF = 9.4877
"""95% quantile of the chi-square distribution with 4 degrees of freedom (Mahalanobis gating)."""


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corner boxes -> ``(N, 4)`` centre x, centre y, aspect (w/h), height."""
    boxes = np.asarray(boxes, dtype=np.float64)
    out = np.empty((len(boxes), 4))
    w = boxes[:, 2] - boxes[:, 0]
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    out[:, 0] = boxes[:, 0] + w / 2
    out[:, 1] = boxes[:, 1] + h / 2
    out[:, 2] = w / h
    out[:, 3] = h
    return out


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """``(N, 4)`` centre/aspect/height -> corner boxes (negative sizes clipped to 0)."""
    h = np.maximum(xyah[:, 3], 0.0)
    w = np.maximum(xyah[:, 2], 0.0) * h
    out = np.empty((len(xyah), 4))
    out[:, 0] = xyah[:, 0] - w / 2
    out[:, 1] = xyah[:, 1] - h / 2
    out[:, 2] = xyah[:, 0] + w / 2
    out[:, 3] = xyah[:, 1] + h / 2
    return out


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from ``(N, 4)`` xyah measurements -> means ``(N, 8)`` and covariances ``(N, 8, 8)``.

    Example:
        >>> mean, cov = initiate(xyxy_to_xyah(np.array([[0, 0, 10, 20]])))
        >>> mean.shape, cov.shape
        ((1, 8), (1, 8, 8))
    """
    n = len(measurements)
    mean = np.zeros((n, 8))
    mean[:, :4] = measurements
    h = measurements[:, 3]
    std = np.stack(
        [
            2 * _STD_POSITION * h,
            2 * _STD_POSITION * h,
            np.full(n, 1e-2),
            2 * _STD_POSITION * h,
            10 * _STD_VELOCITY * h,
            10 * _STD_VELOCITY * h,
            np.full(n, 1e-5),
            10 * _STD_VELOCITY * h,
        ],
        axis=1,
    )
    cov = np.zeros((n, 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std**2
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One time step for all tracks: ``x = F x``, ``P = F P F^T + Q``."""
    if not len(mean):
        return mean, cov
    h = mean[:, 3]
    n = len(mean)
    std = np.stack(
        [
            _STD_POSITION * h,
            _STD_POSITION * h,
            np.full(n, 1e-2),
            _STD_POSITION * h,
            _STD_VELOCITY * h,
            _STD_VELOCITY * h,
            np.full(n, 1e-5),
            _STD_VELOCITY * h,
        ],
        axis=1,
    )
    mean = mean.copy()
    mean[:, :4] += mean[:, 4:]
    # F P F^T for F = [[I, I], [0, I]]: add the velocity rows to the position rows, then the columns
    cov = cov.copy()
    cov[:, :4, :] += cov[:, 4:, :]
    cov[:, :, :4] += cov[:, :, 4:]
    idx = np.arange(8)
    cov[:, idx, idx] += std**2
    return mean, cov


def project(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Measurement-space mean ``(N, 4)`` and innovation covariance ``(N, 4, 4)``."""
    h = mean[:, 3]
    std = np.stack([_STD_POSITION * h, _STD_POSITION * h, np.full(len(h), 1e-1), _STD_POSITION * h], axis=1)
    s = cov[:, :4, :4].copy()
    idx = np.arange(4)
    s[:, idx, idx] += std**2
    return mean[:, :4], s


def update(mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct ``N`` tracks with their ``(N, 4)`` xyah measurements (one measurement per track)."""
    if not len(mean):
        return mean, cov
    projected, s = project(mean, cov)
    gain = cov[:, :, :4] @ np.linalg.inv(s)  # (N, 8, 4)
    innovation = measurements - projected
    mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    cov = cov - gain @ cov[:, :4, :]  # K S K^T = K H P for the optimal gain
    return mean, cov


def gating_distance(mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of every measurement to every track -> ``(tracks, measurements)``."""
    if not len(mean) or not len(measurements):
        return np.zeros((len(mean), len(measurements)))
    projected, s = project(mean, cov)
    inv = np.linalg.inv(s)
    d = measurements[None, :, :] - projected[:, None, :]  # (T, M, 4)
    return np.einsum("tmi,tij,tmj->tm", d, inv, d)
