"""The Ray executor: each run of a sweep one Ray task, with a CPU or GPU request, on an
existing cluster or on a local one. Ray is an optional extra (pip install "pe_jax[ray]").

Ray retries a task whose worker died (`MAX_RETRIES` times). The retry finds the dead attempt's
claim.json, which on another node looks live for `stale_after_s`: so the driver gives each run a
claim token, every attempt claims with it, and an attempt that finds its own token takes the
claim over at once (`try_claim(token=...)`). When the last attempt died too, the driver removes
that claim and records the run as failed; a run is never left undone with nobody told.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from pe_jax.sweep._claims import mark_failed, release_abandoned
from pe_jax.sweep._executors import compile_cache_dir
from pe_jax.sweep._runner import Outcome, held_elsewhere, run_claimed

MAX_RETRIES = 3  # attempts after a worker's death (Ray's default, written out)


def _ray_task(run, root, overwrite, claims, cache_dir, xla_flags, token) -> Outcome:
    """In a Ray worker: the driver's XLA flags (unless the node sets its own), then one run."""
    if xla_flags is not None and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = xla_flags
    from pe_jax import runtime

    runtime.configure(cache_dir=cache_dir, xla_flags=False)
    return run_claimed(
        run,
        root,
        overwrite=overwrite,
        claims=claims,
        log=lambda m: print(f"[{run.name}] {m}"),
        token=token,
    )


class RayExecutor:
    """Each run one Ray task on an existing cluster (`address`) or a local one started here.

    Args:
      address: a Ray cluster address ("auto", "ray://host:10001", ...); None starts a local
        cluster of `num_cpus` CPUs (None = all) and shuts it down afterwards.
      cpus_per_run: CPUs each task asks for.
      gpus_per_run: GPUs each task asks for (0 = CPU only); such a task runs in a fresh worker
        process so that its device memory is freed when it ends.
      num_cpus: CPUs of a local cluster; ignored with an `address`.

    The sweep folder must be one every node sees (a shared file system): tasks write the runs'
    folders and claims there.

    Raises:
      ValueError: a negative or zero resource request.
      ImportError: Ray is not installed (pip install "pe_jax[ray]").
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        cpus_per_run: float = 1,
        gpus_per_run: float = 0,
        num_cpus: int | None = None,
    ):
        if not cpus_per_run > 0:
            raise ValueError(f"cpus_per_run must be > 0, got {cpus_per_run!r}.")
        if not gpus_per_run >= 0:
            raise ValueError(f"gpus_per_run must be >= 0, got {gpus_per_run!r}.")
        try:
            import ray  # noqa: F401
        except ImportError as e:
            raise ImportError(
                'executor "ray" needs Ray: pip install "pe_jax[ray]" (or "ray[default]>=2.9,<3").'
            ) from e
        self.address = address
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run
        self.num_cpus = num_cpus

    def run(self, runs, root, *, overwrite, claims, started, log, stop=None) -> Iterator[Outcome]:
        """Submits the runs not held elsewhere as tasks and yields their outcomes as they end.

        Once `stop()` is True the tasks not finished are cancelled (running ones get
        KeyboardInterrupt and release their claims) and yield "cancelled".
        """
        import ray

        root = str(Path(root).resolve())
        started_here = not ray.is_initialized()
        if started_here:
            kwargs = {"address": self.address, "include_dashboard": False}
            if self.address is None:
                # Workers of a local cluster import this checkout of pe_jax, whatever is installed.
                package_root = str(Path(__file__).resolve().parents[2])
                path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
                kwargs.update(
                    num_cpus=self.num_cpus, runtime_env={"env_vars": {"PYTHONPATH": path}}
                )
            ray.init(**kwargs)
        try:
            task = ray.remote(
                num_cpus=self.cpus_per_run,
                num_gpus=self.gpus_per_run,
                max_calls=1 if self.gpus_per_run else 0,
                max_retries=MAX_RETRIES,
            )(_ray_task)
            refs = {}
            cache_dir, xla_flags = compile_cache_dir(), os.environ.get("XLA_FLAGS")
            for run in runs:
                if held_elsewhere(run, root, claims):
                    yield Outcome(run.name, "claimed")
                    continue
                token = uuid.uuid4().hex
                args = (run, root, overwrite, claims, cache_dir, xla_flags, token)
                refs[task.remote(*args)] = (run, token)
            log(f"submitted {len(refs)} Ray tasks to {ray.get_runtime_context().gcs_address}")
            cancelled = False
            while refs:
                if stop is not None and stop() and not cancelled:
                    for ref in refs:
                        ray.cancel(ref)
                    cancelled = True
                done, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
                if not done:
                    continue
                run, token = refs.pop(done[0])
                try:
                    yield ray.get(done[0])
                except Exception as e:  # noqa: BLE001 - a worker crash: report, go on
                    if cancelled:
                        yield Outcome(run.name, "cancelled")
                        continue
                    error = f"{type(e).__name__}: {e}"
                    run_dir = Path(root) / run.name
                    release_abandoned(run_dir, token)  # its last attempt's claim, if left
                    if not (run_dir / "results.json").exists():
                        mark_failed(run_dir, error)
                    yield Outcome(run.name, "failed", error)
        finally:
            if started_here:
                ray.shutdown()
