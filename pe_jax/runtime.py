"""Process set-up for the entry points: XLA:CPU flags and JAX's persistent compilation cache.

Call `configure()` once at the start of a program, before the first JAX computation (the XLA
flags are read when the backend starts). The entry points in `experiments/` do; a notebook may.

- XLA flags: when the environment sets no `XLA_FLAGS`, `CPU_XLA_FLAGS` are used. They only
  change how XLA:CPU compiles (YNNPACK fusions off, Eigen's thread pool off inside ops); GPU and
  TPU compilation ignore them. A user's own `XLA_FLAGS` is never touched. The benchmark
  measures the step with and without them.
- Compilation cache: compiled programs are written under `cache_dir` (default
  `$PE_JAX_CACHE_DIR`, else `~/.cache/pe_jax/xla`), so a resumed run or a rerun of the same
  config loads its programs instead of compiling them again.
- Host memory (`keep_host_memory`): XLA:CPU allocates each execution's temporary buffer with
  `malloc` from its executor thread. glibc serves a block that large from a fresh `mmap` (a
  non-main arena cannot hold it) and unmaps it on `free`, so every step writes to new pages:
  the reference step's 612 MB buffer cost 150,000 minor page faults a step here. With one
  arena, no mmap for large blocks and no trimming (glibc's `mallopt`: M_ARENA_MAX,
  M_MMAP_MAX, M_TRIM_THRESHOLD), the buffer stays mapped and is reused: 0 faults a step, and
  one model's step went from 0.84-0.90 to 0.54-0.67 s on this project's 2-core CPU. With a
  run's 10 models in one program it gained nothing (0.99x; `python -m experiments.throughput
  --lever=host_memory --models=10`, docs/performance.md). The price is that freed host memory
  is kept by the process for reuse rather than returned to the system.
  `PE_JAX_KEEP_HOST_MEMORY=0` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pathlib
import sys

import jax

CPU_XLA_FLAGS = "--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_multi_thread_eigen=false"
CACHE_ENV = "PE_JAX_CACHE_DIR"
KEEP_MEMORY_ENV = "PE_JAX_KEEP_HOST_MEMORY"

# glibc's mallopt parameters (malloc.h) and the values `keep_host_memory` sets.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_KEEP = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))


def keep_host_memory() -> str:
    """Makes glibc malloc keep and reuse large freed blocks (see the module docstring).

    Call it before the JAX backend starts: threads that allocated earlier keep their arena.
    Only glibc on Linux has these settings; elsewhere nothing changes.

    Returns:
      "kept", or why nothing changed ("turned off by PE_JAX_KEEP_HOST_MEMORY=0",
      "not glibc", "mallopt refused ...").
    """
    if os.environ.get(KEEP_MEMORY_ENV, "1") == "0":
        return f"turned off by {KEEP_MEMORY_ENV}=0"
    if not sys.platform.startswith("linux"):
        return "not glibc"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "not glibc"
    refused = [param for param, value in _KEEP if mallopt(param, value) != 1]
    return f"mallopt refused {refused}" if refused else "kept"


def default_cache_dir() -> pathlib.Path:
    """`$PE_JAX_CACHE_DIR` if set, else `~/.cache/pe_jax/xla`."""
    env = os.environ.get(CACHE_ENV)
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "pe_jax" / "xla"


def configure(
    *,
    cache_dir: str | os.PathLike | None = None,
    xla_flags: bool = True,
    min_compile_time_s: float = 0.5,
    keep_memory: bool = True,
) -> dict:
    """Sets the CPU XLA flags (only when `XLA_FLAGS` is unset), host memory reuse and the
    compilation cache.

    Args:
      cache_dir: folder of the persistent compilation cache; None = `default_cache_dir()`;
        "" disables the cache.
      xla_flags: set `CPU_XLA_FLAGS` when the environment has no `XLA_FLAGS`.
      min_compile_time_s: programs that compile faster than this are not cached.
      keep_memory: call `keep_host_memory()`.

    Returns:
      {"xla_flags": the XLA_FLAGS in force, "cache_dir": the cache folder or None,
      "host_memory": what `keep_host_memory` returned, or "unchanged"}.

    Raises:
      ValueError: a negative `min_compile_time_s`.
    """
    if not min_compile_time_s >= 0:
        raise ValueError(f"min_compile_time_s must be >= 0, got {min_compile_time_s!r}.")
    if xla_flags and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = CPU_XLA_FLAGS
    host_memory = keep_host_memory() if keep_memory else "unchanged"
    folder = None
    if cache_dir != "":
        folder = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return {
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "cache_dir": folder,
        "host_memory": host_memory,
    }
