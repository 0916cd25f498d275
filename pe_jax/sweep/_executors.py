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
is an Outcome "failed" with its error, and the others go on. Every executor takes `stop`, a
callable polled between runs and (through the trainer) between steps: once it returns True no
run starts (the queued ones are "cancelled"), and the running ones checkpoint and stop
("interrupted"), releasing their claims (`StopOnSignals` makes SIGINT and SIGTERM set it).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import queue
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence

from pe_jax.runfiles import DamagedFileError
from pe_jax.sweep._claims import (
    FAILED,
    HEARTBEAT_S,
    STALE_AFTER_S,
    ClaimLostError,
    clear_failed,
    fs_now,
    is_stale,
    mark_failed,
    read_claim,
    read_failed,
    try_claim,
)

_SINGLE_THREAD_FLAG = "--xla_cpu_multi_thread_eigen=false"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What became of one run: "trained" here, "finished" (by another process meanwhile),
    "claimed" (another live process holds it), "lost" (its claim was taken over while it
    trained; it stopped writing), "interrupted" (stopped on request after a checkpoint),
    "cancelled" (never started: a stop was requested), or "failed" with its error."""

    name: str
    status: str
    error: str = ""
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class ClaimOptions:
    """How claims are taken and failures retried.

    Attributes:
      known_failures: ids of the failed.json files present when the sweep started: those runs
        are retried. A failure recorded later (by a peer during this sweep) is reported, not
        retried, unless `retry_failed`. No clocks are compared.
      retry_failed: retry every failed run, also those a peer failed during this sweep.
      stale_after_s: a claim untouched for this long is taken over.
      heartbeat_s: how often a held claim is renewed.
    """

    known_failures: frozenset[str] = frozenset()
    retry_failed: bool = False
    stale_after_s: float = STALE_AFTER_S
    heartbeat_s: float = HEARTBEAT_S


def known_failures(runs, root) -> tuple[frozenset[str], dict[str, str]]:
    """The ids of the runs' failed.json files now, and {run name: error} of damaged ones."""
    ids, damaged = set(), {}
    for run in runs:
        try:
            record = read_failed(run.workdir(root))
        except DamagedFileError as e:
            damaged[run.name] = f"{type(e).__name__}: {e}"
            continue
        if record is not None:
            ids.add(record["id"])
    return frozenset(ids), damaged


def _never() -> bool:
    return False


def run_claimed(
    run,
    root: str | os.PathLike,
    *,
    overwrite: bool,
    claims: ClaimOptions,
    log: Callable[[str], None] = print,
    stop: Callable[[], bool] | None = None,
    token: str | None = None,
) -> Outcome:
    """Trains one SweepRun in this process if it is free: claim, train, release.

    The trainer checks the claim before every write (`Claim.check`): once it is lost the run
    stops without writing and the Outcome is "lost". Any other exception of the run is caught
    and returned as Outcome "failed" (and recorded in failed.json, while the claim is still
    held), so one bad run never stops a sweep; so is a damaged claim.json or failed.json,
    named in the error. `stop` (see the module docstring) and `token` (`try_claim`: a retried
    task reclaiming its own claim) are passed on.
    """
    from pe_jax.sweep._sweep import is_finished
    from pe_jax.training import RunInterrupted, train_and_evaluate

    stop = stop or _never
    run_dir = run.workdir(root)
    if is_finished(run, root):
        return Outcome(run.name, "finished")
    if stop():
        return Outcome(run.name, "cancelled")
    try:
        failure = read_failed(run_dir)
        if (
            failure is not None
            and not claims.retry_failed
            and failure["id"] not in claims.known_failures
        ):  # a peer of this sweep failed it
            return Outcome(run.name, "failed", failure["error"])
        claim = try_claim(
            run_dir,
            stale_after_s=claims.stale_after_s,
            heartbeat_s=claims.heartbeat_s,
            token=token,
        )
    except DamagedFileError as e:
        return Outcome(run.name, "failed", f"{type(e).__name__}: {e}")
    if claim is None:
        return Outcome(run.name, "claimed")
    with claim:
        if is_finished(run, root):  # finished between our look and our claim
            return Outcome(run.name, "finished")
        t0 = time.perf_counter()
        try:
            train_and_evaluate(
                run.config,
                run_dir,
                overwrite=overwrite,
                log=log,
                fence=claim.check,
                stop=lambda: stop() or claim.lost is not None,
            )
            claim.check()
        except ClaimLostError as e:
            log(f"stopped without writing: {e}")
            return Outcome(run.name, "lost", str(e), time.perf_counter() - t0)
        except RunInterrupted as e:
            return Outcome(run.name, "interrupted", str(e), time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - recorded, reported, and the sweep goes on
            error = f"{type(e).__name__}: {e}"
            log(traceback.format_exc().rstrip())
            try:
                claim.check()  # failed.json is the claim holder's to write
            except ClaimLostError as lost:
                return Outcome(run.name, "lost", f"{lost}; {error}", time.perf_counter() - t0)
            mark_failed(run_dir, error)
            return Outcome(run.name, "failed", error, time.perf_counter() - t0)
        clear_failed(run_dir)
        return Outcome(run.name, "trained", seconds=time.perf_counter() - t0)


def held_elsewhere(run, root, claims: ClaimOptions) -> bool:
    """Whether another process holds a live claim on the run (a look, not a claim; a damaged
    claim.json is left for `run_claimed` to report)."""
    run_dir = run.workdir(root)
    try:
        claim = read_claim(run_dir)
    except DamagedFileError:
        return False
    if claim is None:
        return False
    return not is_stale(claim, stale_after_s=claims.stale_after_s, now=fs_now(run_dir))


class StopOnSignals:
    """A stop request from SIGINT or SIGTERM, for the executors' `stop`.

    Inside the `with` block the first of these signals makes the instance return True (no new
    run starts, queued runs are cancelled, running runs checkpoint and stop, claims are
    released); with `once` the handlers in place before are put back at once, so a second
    signal acts as it did before (Ctrl-C twice: KeyboardInterrupt); without it (a worker
    process, which may get both the terminal's SIGINT and its parent's SIGTERM) every later
    signal is absorbed as well. Only the main thread can install them.

    Attributes:
      signum: the signal received, or None.
    """

    def __init__(
        self, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM), *, once: bool = True
    ):
        self.signals = tuple(signals)
        self.once = once
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (130 for SIGINT, 143 for SIGTERM); 0 without a signal."""
        return 0 if self.signum is None else 128 + self.signum

    def _handle(self, signum, _frame) -> None:
        self.signum = self.signum or signum
        if self.once:
            self._restore()

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def __enter__(self) -> StopOnSignals:
        for number in self.signals:
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()


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
        stop = stop or _never
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


def make_executor(
    name: str = "local",
    *,
    workers: int = 1,
    ray_address: str | None = None,
    ray_cpus_per_run: float = 1,
    ray_gpus_per_run: float = 0,
):
    """The executor called `name` ("local" or "ray"); for "ray" without an address, a local
    cluster of `workers * ray_cpus_per_run` CPUs when workers > 1, else of all CPUs.

    Raises:
      ValueError: an unknown name, or workers < 1.
    """
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        from pe_jax.sweep._ray_executor import RayExecutor

        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}.")
        num_cpus = int(workers * ray_cpus_per_run) if workers > 1 else None
        return RayExecutor(
            address=ray_address or None,
            cpus_per_run=ray_cpus_per_run,
            gpus_per_run=ray_gpus_per_run,
            num_cpus=num_cpus,
        )
    raise ValueError(f'executor must be "local" or "ray", got {name!r}.')


def take_shard(runs: Sequence, shard) -> list:
    """The runs whose index in `runs` mod n is i, for `shard` "i/n" (all runs for None)."""
    parsed = parse_shard(shard)
    if parsed is None:
        return list(runs)
    i, n = parsed
    return [run for k, run in enumerate(runs) if k % n == i]


def settled(run, root) -> bool:
    """Whether a run needs nobody any more: finished, or failed (or its claim.json damaged)
    and not claimed by anyone."""
    from pe_jax.sweep._sweep import is_finished

    if is_finished(run, root):
        return True
    try:
        claim = read_claim(run.workdir(root))
    except DamagedFileError:
        return True  # reported failed, naming the file; waits for a person
    return claim is None and (run.workdir(root) / FAILED).exists()


def pending(run, root, claims: ClaimOptions) -> str | None:
    """Why a run is not settled: who holds it, or that nobody does; None when settled."""
    if settled(run, root):
        return None
    claim = read_claim(run.workdir(root))
    if claim is None:
        return "not finished and not claimed: rerun the sweep"
    who = f"{claim.get('host')} pid {claim.get('pid')}"
    if is_stale(claim, stale_after_s=claims.stale_after_s, now=fs_now(run.workdir(root))):
        return f"claim of {who} is stale: rerun the sweep to take it over"
    return f"held by {who}"


def train_together(runs, root, overwrite, started, log) -> Iterator[Outcome]:
    """A multi-process JAX job: every process trains every run (each one global program), no
    claims; a non-finite loss fails the run on all processes alike and the sweep goes on."""
    from pe_jax.training import NonFiniteError, train_and_evaluate

    for run in runs:
        started(run)
        t0 = time.perf_counter()
        try:
            train_and_evaluate(
                run.config, run.workdir(root), overwrite=overwrite, log=lambda m: log(f"  {m}")
            )
        except NonFiniteError as e:
            yield Outcome(run.name, "failed", str(e))
            continue
        yield Outcome(run.name, "trained", seconds=time.perf_counter() - t0)


class Progress:
    """Progress lines "[done/total] run: ..." with an ETA from the throughput of the runs
    trained so far (wall time since the start / runs trained), so parallel executors count."""

    def __init__(self, total: int, done: int, to_train: int, log: Callable[[str], None]):
        self.total, self.done, self.left, self.log = total, done, to_train, log
        self.trained = 0
        self.t0 = time.perf_counter()

    def eta(self) -> str:
        from pe_jax.training import format_eta

        if not self.trained:
            return "unknown"
        return format_eta(self.left * (time.perf_counter() - self.t0) / self.trained)

    def started(self, run) -> None:
        self.log(
            f"[{self.done + 1}/{self.total}] {run.name}: training ({self.left} to train, "
            f"ETA {self.eta()})"
        )

    def record(self, outcome: Outcome) -> None:
        from pe_jax.training import format_eta

        self.done += 1
        self.left -= 1
        self.trained += outcome.status == "trained"
        what = {
            "trained": f"done in {format_eta(outcome.seconds)}",
            "finished": "finished by another process",
            "claimed": "claimed by another live process; left to it",
            "lost": f"claim taken over while training; stopped without writing ({outcome.error})",
            "interrupted": "stopped on request (checkpointed; a rerun resumes it)",
            "cancelled": "cancelled (a stop was requested before it started)",
            "failed": f"FAILED ({outcome.error})",
        }[outcome.status]
        self.log(f"[{self.done}/{self.total}] {outcome.name}: {what} (ETA {self.eta()})")


def parse_shard(shard: str | Sequence[int] | None) -> tuple[int, int] | None:
    """ "i/n" (or (i, n)) -> (i, n) with 0 <= i < n; None or "" -> None.

    Raises:
      ValueError: anything else, naming the value.
    """
    if shard is None or shard == "":
        return None
    try:
        i, n = (int(x) for x in (shard.split("/") if isinstance(shard, str) else shard))
    except (TypeError, ValueError):
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(f'shard must be "i/n" with 0 <= i < n, got {shard!r}.')
    return i, n
