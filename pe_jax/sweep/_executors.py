"""Executors: who trains the pending runs of a sweep — this process, K local worker processes,
or Ray tasks on a cluster. Every executor trains a run only under its claim (`_claims`), so
executors, shards and separate sweep processes can share one sweep folder.

- `LocalExecutor(workers=1)`: the runs one after another in this process (the default).
- `LocalExecutor(workers=K)`: K runs at once, each in a fresh 'spawn' process pinned to its
  share of this process's cores (`os.sched_setaffinity`); XLA:CPU sizes its thread pool from
  that affinity, and with one core per worker Eigen's intra-op threading is switched off.
- `RayExecutor` (`_ray_executor`): each run is one Ray task asking for `cpus_per_run` CPUs
  (or `gpus_per_run` GPUs; Ray then sets CUDA_VISIBLE_DEVICES, so JAX inside the task sees
  only its devices).
Executors yield an `Outcome` per run as runs complete; a run that raises or whose worker dies
is an Outcome "failed" with its error, and the others go on. Every executor takes `stop` (see
`_runner`): queued runs are then "cancelled" and running ones "interrupted".
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import queue
from collections.abc import Iterator

from pe_jax.sweep._claims import mark_failed
from pe_jax.sweep._runner import Outcome, held_elsewhere, never, run_claimed
from pe_jax.sweep._stop import StopOnSignals

_SINGLE_THREAD_FLAG = "--xla_cpu_multi_thread_eigen=false"


class LocalExecutor:
    """Runs on this host: in this process (workers=1) or in `workers` pinned subprocesses.

    Raises:
      ValueError: workers < 1.
    """

    def __init__(self, workers: int = 1):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}.")
        self.workers = workers

    def run(self, runs, root, *, overwrite, claims, started, log, stop=None) -> Iterator[Outcome]:
        stop = stop or never
        if self.workers == 1:
            for run in runs:
                if stop():
                    yield Outcome(run.name, "cancelled")
                    continue
                if not held_elsewhere(run, root, claims):
                    started(run)
                yield run_claimed(
                    run,
                    root,
                    overwrite=overwrite,
                    claims=claims,
                    log=lambda m: log(f"  {m}"),
                    stop=stop,
                )
            return
        yield from self._run_pool(
            runs, root, overwrite=overwrite, claims=claims, log=log, stop=stop
        )

    def _run_pool(self, runs, root, *, overwrite, claims, log, stop) -> Iterator[Outcome]:
        slots: queue.Queue = queue.Queue()
        for cores in core_shares(self.workers):
            slots.put(cores)
        context = multiprocessing.get_context("spawn")
        cache_dir = compile_cache_dir()

        def one(run) -> Outcome:
            if stop():
                return Outcome(run.name, "cancelled")
            if held_elsewhere(run, root, claims):  # spare a process start
                return Outcome(run.name, "claimed")
            cores = slots.get()
            if stop():
                slots.put(cores)
                return Outcome(run.name, "cancelled")
            receive, send = context.Pipe(duplex=False)
            args = (run, str(root), overwrite, claims, cores, cache_dir, send)
            worker = context.Process(target=_worker_main, args=args, name=run.name)
            try:
                worker.start()
                send.close()
                log(f"{run.name}: started in worker pid {worker.pid} on cores {sorted(cores)}")
                asked = False
                while not receive.poll(0.2):  # True on an answer or when the worker is gone
                    if stop() and not asked:  # it checkpoints, releases its claim, answers
                        worker.terminate()
                        asked = True
                outcome = receive.recv()
            except EOFError:  # the worker died before it could answer
                outcome = None
            finally:
                worker.join()
                slots.put(cores)
            if outcome is None:
                error = f"worker pid {worker.pid} exited with code {worker.exitcode}"
                if stop():  # killed while stopping: nothing failed, a rerun resumes it
                    return Outcome(run.name, "interrupted", error)
                if not (run.workdir(root) / "results.json").exists():
                    mark_failed(run.workdir(root), error)
                outcome = Outcome(run.name, "failed", error)
            return outcome

        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            futures = [pool.submit(one, run) for run in runs]
            for future in concurrent.futures.as_completed(futures):
                yield future.result()


def core_shares(workers: int) -> list[set[int]]:
    """This process's cores split into `workers` contiguous shares (one core each, reused
    round-robin, when there are more workers than cores)."""
    cores = sorted(os.sched_getaffinity(0))
    if workers > len(cores):
        return [{cores[i % len(cores)]} for i in range(workers)]
    n = len(cores)
    return [set(cores[i * n // workers : (i + 1) * n // workers]) for i in range(workers)]


def compile_cache_dir() -> str:
    """This process's persistent compilation cache folder ("" = none), for its workers."""
    import jax

    return jax.config.jax_compilation_cache_dir or ""


def _worker_main(run, root, overwrite, claims, cores, cache_dir, send) -> None:
    """A spawned worker: pin, limit XLA threads, set the compile cache, train one run.

    SIGINT (Ctrl-C reaches the whole process group) and SIGTERM (the parent's request) make
    the run checkpoint and stop; the worker then answers "interrupted".
    """
    with StopOnSignals(once=False) as stop:
        os.sched_setaffinity(0, cores)
        flags = os.environ.get("XLA_FLAGS", "")
        if len(cores) == 1 and "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {_SINGLE_THREAD_FLAG}".strip()
        from pe_jax import runtime

        runtime.configure(cache_dir=cache_dir, xla_flags=False)
        outcome = run_claimed(
            run,
            root,
            overwrite=overwrite,
            claims=claims,
            log=lambda m: print(f"  [{run.name}] {m}"),
            stop=stop,
        )
        send.send(outcome)
        send.close()
