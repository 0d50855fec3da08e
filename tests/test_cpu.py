"""CPU counting: affinity capped by a container's cgroup quota (v2 ``cpu.max``, v1 CFS files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nexus.cpu import cgroup_cpu_limit, cpu_count


def write_cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage"}, None),
        ({}, None),
    ],
)
def test_cgroup_cpu_limit(tmp_path, files, limit):
    assert cgroup_cpu_limit(write_cgroup(tmp_path, files)) == limit


@pytest.mark.parametrize(
    ("files", "cap"),
    [
        ({"cpu.max": "50000 100000"}, 1),  # half a CPU still gets one thread
        ({"cpu.max": "150000 100000"}, 2),  # rounded up
        ({"cpu.max": "max 100000"}, None),
    ],
)
def test_cpu_count_is_capped_by_the_quota(tmp_path, files, cap):
    cores = len(os.sched_getaffinity(0))
    expected = cores if cap is None else min(cores, cap)
    assert cpu_count(write_cgroup(tmp_path, files)) == expected
