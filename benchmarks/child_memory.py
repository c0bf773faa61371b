"""Peak extra memory of a CPU call, measured in a forked child (Linux, glibc): shared by the benchmarks.

tracemalloc does not see torch's allocations and torch keeps CPU allocator statistics only with its
profiler, so the call runs in a forked child (inputs shared copy-on-write) that makes glibc return
every freed block over 128 KiB to the OS (``mallopt``), releases its free heap before each call
(``malloc_trim``), resets the peak resident set (``/proc/self/clear_refs`` <- 5) and reports
``VmHWM`` minus ``VmRSS`` around the call, so cached allocations cannot hide a peak. The first call of
a fresh process pays a one-time ~10-16 MiB, hence several calls and the last one's memory.
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["available", "measure_in_child"]

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def available() -> bool:
    """Whether this system can measure (fork and the Linux peak-RSS reset)."""
    return hasattr(os, "fork") and Path("/proc/self/clear_refs").exists()


def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def measure_in_child(fn: Callable[[], Any], calls: int = 2, limit: float = math.inf) -> dict:
    """``{"seconds": [each call], "mib": peak extra MiB of the last call, "out": its result as a list or None}``.

    `fn` runs up to `calls` times in a forked child, which stops after a call slower than `limit`
    seconds. An exception in the child is raised here as a RuntimeError naming it.
    """
    gc.collect()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: measure, report through the pipe, leave without any cleanup
        os.close(read)
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
            libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024)
            seconds = []
            for _ in range(calls):
                libc.malloc_trim(0)  # free heap chunks still resident (the parent's, an earlier call's) would hide reuse
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
                base = _status_kib("VmRSS")
                start = time.perf_counter()
                out = fn()
                seconds.append(time.perf_counter() - start)
                mib = (_status_kib("VmHWM") - base) / 1024
                if seconds[-1] > limit:
                    break
            report = {"seconds": seconds, "mib": mib, "out": None if out is None else out.tolist()}
        except Exception as exc:  # reported by the parent
            report = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(report).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = json.loads(pipe.read() or '{"error": "the measuring child died"}')
    os.waitpid(pid, 0)
    if "error" in report:
        raise RuntimeError(report["error"])
    return report
