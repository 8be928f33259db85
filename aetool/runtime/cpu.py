"""How many CPUs this process may use, and thread counts checked against that: what every thread pool is sized by;
and how freed memory is kept for reuse (glibc), which decides how often big allocations page-fault."""

from __future__ import annotations

import functools
import math
import numbers
import os
from pathlib import Path

from aetool.errors import AetoolError

CGROUP_V2_MAX = Path("/sys/fs/cgroup/cpu.max")  # "QUOTA PERIOD" or "max PERIOD" (cgroup v2)
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")  # -1 when unlimited
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
MAX_THREADS_PER_CORE = 4
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h


def _cgroup_limit() -> int | None:
    """CPUs the cgroup's CPU quota allows (quota ÷ period, rounded up), or None when there is no quota."""
    try:
        if CGROUP_V2_MAX.is_file():
            quota, period = CGROUP_V2_MAX.read_text().split()[:2]
            return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
        if CGROUP_V1_QUOTA.is_file() and CGROUP_V1_PERIOD.is_file():
            quota_us, period_us = int(CGROUP_V1_QUOTA.read_text()), int(CGROUP_V1_PERIOD.read_text())
            return None if quota_us <= 0 or period_us <= 0 else max(1, math.ceil(quota_us / period_us))
    except (OSError, ValueError):
        return None
    return None


def usable_cores() -> int:
    """CPUs this process may run on: its affinity mask (``taskset``), capped by a cgroup CPU quota (containers).

    onnxruntime and PyTorch size their pools from the host's CPU count, which under ``taskset -c 0`` or a container
    quota gives threads that wait for each other; aetool passes this number instead.
    """
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = _cgroup_limit()
    return max(1, min(affinity, limit) if limit else affinity)


CPUINFO = Path("/proc/cpuinfo")
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})  # Linux's names for AVX-512 VNNI and AVX-VNNI
# The instruction sets that decide onnxruntime's and PyTorch's kernels, as benchmarks report them
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "asimd", "asimddp")


@functools.cache
def cpu_facts() -> tuple[str, frozenset[str]]:
    """The CPU's model name and its feature flags, from the first processor of ``/proc/cpuinfo`` (Linux; ARM's
    ``Features`` line too); elsewhere, or where it cannot be read, ``platform.processor()`` (or the machine's
    architecture) and no flags."""
    import platform

    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    return name, frozenset((fields.get("flags") or fields.get("Features") or "").split())


def has_vnni() -> bool:
    """Whether the CPU has VNNI (AVX-512 VNNI or AVX-VNNI), whose integer dot products add uint8 × int8 products
    in 32 bits, by its flags (:func:`cpu_facts`); False where they cannot be read (other systems)."""
    return bool(VNNI_FLAGS & cpu_facts()[1])


def check_threads(threads: int) -> int:
    """``threads`` when it is a whole number from 1 to 4× the usable cores; raises ``AetoolError`` otherwise (more
    only costs memory; 1.5 was taken; trial 100)."""
    usable = usable_cores()
    most = MAX_THREADS_PER_CORE * usable
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or not 1 <= threads <= most:
        raise AetoolError(
            f"--threads takes 1 to {most} (4 × the {usable} core{'s' * (usable != 1)} this process may use), got {threads!r}"
        )
    return threads


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (whether it did: False off glibc).

    By default glibc hands blocks over 128 kB to mmap and trims the heap's free top, so each PyTorch call that
    allocates big activations pays page faults anew, more or less depending on the heap's history (conv-unpool's
    batch-256 time more than halved between a fresh process and one that had trained). onnxruntime keeps its own
    arena and never pays them, so without this the ratio measures glibc rather than the two runtimes. Training
    calls it too: a conv model's step paid 8,800 page faults and a fifth of its CPU time in the kernel without it.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 256 << 20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))
