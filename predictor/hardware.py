"""What this machine offers the model: usable cores and native bf16.

Kept apart from the engine so the build (training/) can ask the same questions
without importing the serving settings.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """Cores this process may use: its affinity, capped by a cgroup v2 CPU quota.

    torch's default counts the node's cores, so a pod limited to 2 CPUs on a
    64-core node would start dozens of intra-op threads and be throttled.
    """
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota: the affinity is the limit
    return cpus


def default_cpu_threads() -> int:
    """One intra-op thread per core this process may use (affinity, cgroup quota), not
    per core of the node, which is what torch counts by itself.

    Measured on 2 quiet cores, v1 at 64 clients: 2 threads served 217 (bf16) and
    132 (fp32) texts/s against 137 and 76 with 1. Only when other processes hog
    the cores did 1 thread win (41-44 against 4-7 texts/s): set
    PREDICTOR_CPU_THREADS there.
    """
    return available_cpus()


def cpu_has_native_bf16() -> bool:
    """oneDNN's own answer (AVX512-BF16 or AMX kernels), not a guess from /proc/cpuinfo.

    Without native support bf16 is emulated and slower than fp32, so `auto` avoids it.
    """
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False
