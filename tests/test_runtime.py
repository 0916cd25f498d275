"""pe_jax.runtime: XLA flags only when unset, and a persistent compilation cache that is hit."""

import math
import os
import subprocess
import sys
import textwrap

import pytest

from pe_jax import runtime

_PROBE = textwrap.dedent(
    """
    import sys
    from pe_jax import runtime
    info = runtime.configure(cache_dir=sys.argv[1], min_compile_time_s=0)
    import jax, jax.numpy as jnp
    events = []
    jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
    print(float(jax.jit(lambda x: jnp.tanh(x @ x.T).sum())(jnp.ones((32, 32)))))
    print(info["xla_flags"])
    print(sum(e == "/jax/compilation_cache/cache_hits" for e in events))
    """
)


def _probe(cache_dir, env_flags=None):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if env_flags is not None:
        env["XLA_FLAGS"] = env_flags
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(cache_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    ).stdout.splitlines()
    return float(out[0]), out[1], int(out[2])


def test_flags_set_only_when_unset_and_cache_hit_on_rerun(tmp_path):
    cache = tmp_path / "cache"
    value, flags, hits = _probe(cache)
    assert value == pytest.approx(32 * 32 * math.tanh(32.0))
    assert flags == runtime.CPU_XLA_FLAGS
    assert hits == 0 and any(cache.iterdir())
    value2, _, hits2 = _probe(cache)
    assert value2 == value
    assert hits2 >= 1  # the program compiled by the first process is loaded, not compiled
    _, flags3, _ = _probe(cache, env_flags="--xla_cpu_multi_thread_eigen=true")
    assert flags3 == "--xla_cpu_multi_thread_eigen=true"  # the user's flags are kept


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv(runtime.CACHE_ENV, str(tmp_path / "c"))
    assert runtime.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv(runtime.CACHE_ENV)
    assert runtime.default_cache_dir().parts[-3:] == (".cache", "pe_jax", "xla")


def test_bad_min_compile_time():
    with pytest.raises(ValueError, match="min_compile_time_s"):
        runtime.configure(cache_dir="", min_compile_time_s=-1)


_FAULTS = textwrap.dedent(
    """
    import resource
    from pe_jax import runtime
    info = runtime.configure(cache_dir="")
    import jax, jax.numpy as jnp

    @jax.jit
    def f(x):  # a [4096, 4096] float32 temporary: 64 MiB, 16,384 pages
        return (jnp.tanh(x @ x.T) @ x).sum()

    x = jnp.ones((4096, 8), jnp.float32)
    for _ in range(12):  # until the freed blocks are back in the heap
        f(x).block_until_ready()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        f(x).block_until_ready()
    print(info["host_memory"])
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
    """
)


def _faults_per_call(keep: str) -> tuple[str, float]:
    env = {**os.environ, runtime.KEEP_MEMORY_ENV: keep}
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    ).stdout.splitlines()
    return out[0], float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_host_memory_kept_between_executions():
    # XLA:CPU's temporary buffer is mapped afresh by every execution unless glibc keeps it:
    # without the setting each call faults in its 64 MiB again; with it the pages are reused.
    state_off, faults_off = _faults_per_call("0")
    state_on, faults_on = _faults_per_call("1")
    assert state_off == f"turned off by {runtime.KEEP_MEMORY_ENV}=0"
    assert state_on == "kept"
    assert faults_off > 12_000  # most of the temporary's 16,384 pages, every call
    assert faults_on < faults_off / 10
