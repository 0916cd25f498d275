"""One run of a sweep under its claim, and what became of it (`Outcome`); whether a run is
settled or who holds it; progress lines. Shared by every executor (`_executors`,
`_ray_executor`) and by `run_sweep`.

`stop`, taken by `run_claimed`, is a callable polled between runs and (through the trainer)
between steps: once it returns True no run starts ("cancelled"), and a running one checkpoints
and stops ("interrupted"), releasing its claim (`StopOnSignals` sets it on SIGINT/SIGTERM).
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from collections.abc import Callable, Iterator

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
from pe_jax.sweep._runs import is_finished
from pe_jax.training import (
    NonFiniteError,
    RunInterrupted,
    format_eta,
    train_and_evaluate,
)


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


def never() -> bool:
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

    stop = stop or never
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


def settled(run, root) -> bool:
    """Whether a run needs nobody any more: finished, or failed (or its claim.json damaged)
    and not claimed by anyone."""

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

        if not self.trained:
            return "unknown"
        return format_eta(self.left * (time.perf_counter() - self.t0) / self.trained)

    def started(self, run) -> None:
        self.log(
            f"[{self.done + 1}/{self.total}] {run.name}: training ({self.left} to train, "
            f"ETA {self.eta()})"
        )

    def record(self, outcome: Outcome) -> None:

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
