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
"""

from __future__ import annotations

import os
import pathlib

import jax

CPU_XLA_FLAGS = "--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_multi_thread_eigen=false"
CACHE_ENV = "PE_JAX_CACHE_DIR"


def default_cache_dir() -> pathlib.Path:
    """`$PE_JAX_CACHE_DIR` if set, else `~/.cache/pe_jax/xla`."""
    env = os.environ.get(CACHE_ENV)
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "pe_jax" / "xla"


def configure(
    *,
    cache_dir: str | os.PathLike | None = None,
    xla_flags: bool = True,
    min_compile_time_s: float = 0.5,
) -> dict:
    """Sets the CPU XLA flags (only when `XLA_FLAGS` is unset) and the compilation cache.

    Args:
      cache_dir: folder of the persistent compilation cache; None = `default_cache_dir()`;
        "" disables the cache.
      xla_flags: set `CPU_XLA_FLAGS` when the environment has no `XLA_FLAGS`.
      min_compile_time_s: programs that compile faster than this are not cached.

    Returns:
      {"xla_flags": the XLA_FLAGS in force, "cache_dir": the cache folder or None}.

    Raises:
      ValueError: a negative `min_compile_time_s`.
    """
    if not min_compile_time_s >= 0:
        raise ValueError(f"min_compile_time_s must be >= 0, got {min_compile_time_s!r}.")
    if xla_flags and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = CPU_XLA_FLAGS
    folder = None
    if cache_dir != "":
        folder = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return {"xla_flags": os.environ.get("XLA_FLAGS"), "cache_dir": folder}
