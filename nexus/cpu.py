"""How many CPUs this process may use: its affinity mask, capped by a container's CPU quota."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by the cgroup quota (a Kubernetes CPU limit), or ``None`` when unlimited.

    Reads cgroup v2 ``cpu.max`` (``"200000 100000"`` is 2 CPUs, ``"max 100000"`` none), else
    cgroup v1 ``cpu/cpu.cfs_quota_us`` over ``cpu/cpu.cfs_period_us`` (a quota of -1 is none).

    Example:
        >>> cgroup_cpu_limit(Path("/nonexistent")) is None
        True
    """
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max" and float(period) > 0:
            return float(quota) / float(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_v1 = float((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_v1 = float((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_v1 / period_v1 if quota_v1 > 0 and period_v1 > 0 else None


def cpu_count(root: Path = CGROUP_ROOT) -> int:
    """Cores this process may run on (CPU affinity, capped by the cgroup quota, rounded up), at least 1.

    Inside a pod limited to 2 CPUs on a 64-core node this is 2, not 64: thread pools sized from it
    do not oversubscribe the quota.

    Example:
        >>> cpu_count() >= 1
        True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cores = min(cores, math.ceil(limit))
    return max(1, cores)
