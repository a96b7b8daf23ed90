"""The cores torch may use follow affinity and the cgroup quota, not the node."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from predictor.hardware import available_cpus


@pytest.mark.parametrize(
    ("cpu_max", "cap"),
    [("150000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", None), ("junk", None)],
)
def test_a_cgroup_quota_caps_the_cores_torch_may_use(
    tmp_path: Path, cpu_max: str, cap: int | None
) -> None:
    """A pod limited to 1.5 CPUs gets 2 threads' worth, not one per core of the node."""
    (tmp_path / "cpu.max").write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    expected = affinity if cap is None else min(affinity, cap)
    assert available_cpus(tmp_path / "cpu.max") == expected
    assert available_cpus(tmp_path / "absent") == affinity
