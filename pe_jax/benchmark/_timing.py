"""Timing and machine facts shared by every benchmark section.

Every figure is the median of `repeats` timed runs after warm-up (which includes compilation),
each ended by `jax.block_until_ready`. A run of a fast function repeats it `number` times (set
once so that a run lasts about `min_run_s`), since a single call of a few microseconds is below
the resolution of one host-side measurement.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def measure(
    fn: Callable[..., Any],
    *args: Any,
    repeats: int = 5,
    warmup: int = 1,
    min_run_s: float = 0.05,
) -> dict[str, float]:
    """Median wall time of `fn(*args)`, after `warmup` untimed calls.

    Args:
      fn: a function returning JAX arrays (a jitted or compiled program); each call is
        independent (functions that donate their input use `measure_chain`).
      args: its arguments.
      repeats: timed runs; the median is reported.
      warmup: untimed calls first (compilation, caches, thread pools).
      min_run_s: a run repeats `fn` until it lasts about this long.

    Returns:
      {"median_s": seconds per call, "min_s", "max_s", "repeats", "number"}.

    Raises:
      ValueError: repeats < 1 or warmup < 0.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}.")
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    number = max(1, int(min_run_s / max(first, 1e-9)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = None
        for _ in range(number):
            out = fn(*args)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - start) / number)
    return _summary(times, number)


def measure_chain(
    step: Callable[[Any, int], tuple[Any, Any]],
    carry: Any,
    *,
    repeats: int = 5,
    warmup: int = 1,
    steps_per_run: int = 3,
) -> tuple[dict[str, float], Any]:
    """Median time per call of a stateful step `carry, out = step(carry, i)` (e.g. training).

    The step may donate its carry, so each call feeds the next, as in a training loop: calls
    are dispatched back to back and only the last output of a run is waited for.

    Args:
      step: (carry, call index) -> (new carry, output).
      carry: the initial carry.
      repeats: timed runs; warmup: untimed calls first; steps_per_run: calls per timed run.

    Returns:
      (summary as in `measure`, the final carry).
    """
    index = 0
    for _ in range(warmup):
        carry, out = step(carry, index)
        jax.block_until_ready((carry, out))
        index += 1
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = None
        for _ in range(steps_per_run):
            carry, out = step(carry, index)
            index += 1
        jax.block_until_ready((carry, out))
        times.append((time.perf_counter() - start) / steps_per_run)
    return _summary(times, steps_per_run), carry


def _summary(times: list[float], number: int) -> dict[str, float]:
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "repeats": len(times),
        "number": number,
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (as `uptime` prints them); [] where unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes.

    VmHWM of /proc/self/status where available: unlike ru_maxrss, which a child started by
    fork + exec inherits from its parent, it belongs to this process's own address space, and
    `reset_peak_rss` can reset it.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_rss() -> bool:
    """Resets the peak (VmHWM) to the current resident size (Linux clear_refs); False if not."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def current_rss_bytes() -> int:
    """This process's resident set size now, in bytes (from /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def machine_info() -> dict[str, Any]:
    """Backend, device kind and count, CPU count, versions, and the load average now."""
    device = jax.devices()[0]
    import jaxlib

    return {
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "load_average": load_average(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def memory_stats() -> dict[str, int] | None:
    """Device memory statistics of device 0 (peak bytes in use, ...), or None on CPU."""
    stats = jax.devices()[0].memory_stats()
    return None if not stats else {k: int(v) for k, v in stats.items()}
