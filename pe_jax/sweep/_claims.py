"""Claims: a lock file per run, so that any number of sweep processes split a sweep, and a
fence, so that a process that lost its claim writes nothing more to the run.

A run is claimed before it trains by creating `<run workdir>/claim.json` with `O_CREAT|O_EXCL`
(atomic on a local or NFSv3+ file system): exactly one creator wins. The file holds the
claimer's host, pid, kernel boot id, pid namespace, start time, heartbeat period and a random
token; its heartbeat is the file's modification time, touched by a daemon thread every
`heartbeat_s`. Each beat also reads the file back: a claim whose file no longer holds its token
was taken over, and is lost for good.

Fencing: the trainer calls `Claim.check()` before every write to the run folder. It raises
`ClaimLostError` when the claim was taken over, or when it could not be renewed for
`stale_after_s / 2` (a file server that keeps failing, a process stopped that long): peers
take a claim over only after `stale_after_s` without a heartbeat, so a check that passes leaves
the owner at least half of that before anyone else may write. Transient errors of a beat
(ESTALE, EIO, ...) are retried every second until that bound.

A claim is stale when its pid is dead and it was made by this kernel in this pid namespace
(same host, boot id and pid namespace: two containers sharing a hostname do not judge each
other's pids), or when it has not been touched for `stale_after_s`. Its age is measured on the
file server's clock alone: the claim's mtime against the mtime of a probe file created in the
same folder (`fs_now`), so the clocks of the hosts are never compared. A stale claim is taken
over atomically: the taker renames it to a private name (one renamer wins), checks that the file
it now holds is the stale one it judged, deletes it, and creates its own with `O_EXCL`.

A run that fails leaves `failed.json` (its error, host, pid, time, and an id) beside the released
claim. A sweep remembers the ids of the failures present when it starts: those it retries, while
a failure recorded during the sweep (by a peer) is reported, not retried, unless the sweep was
asked to retry failed runs. No time stamps are compared.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from pe_jax.runfiles import (
    CLAIM,
    FAILED,
    DamagedFileError,
    fsync_dir,
    read_claim_file,
    read_failure,
    write_json_atomic,
)

HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0
_RETRY_S = 1.0  # how soon a beat that failed is tried again


class ClaimLostError(RuntimeError):
    """The run's claim was taken over by another process or could not be renewed in time;
    this process wrote nothing to the run after noticing, and must not write more."""


def _elapsed_clock() -> float:
    """Seconds on a clock that also runs while the process is stopped or the host sleeps."""
    return time.clock_gettime(getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def identity() -> dict:
    """Who this process is: host, pid, the kernel's boot id and the pid namespace (None where
    the platform does not say; then pids are never judged across processes)."""
    try:
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_ns = None
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "boot_id": _read_text("/proc/sys/kernel/random/boot_id"),
        "pid_ns": pid_ns,
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def fs_now(folder: str | os.PathLike) -> float:
    """The file server's time now: the mtime of a probe file created in `folder` (this host's
    clock where the folder cannot be written)."""
    probe = Path(folder) / f".clock-{uuid.uuid4().hex}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except OSError:
        return time.time()
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def read_claim(run_dir: str | os.PathLike) -> dict | None:
    """The claim of a run as {host, pid, boot_id, pid_ns, started, heartbeat_s, token,
    heartbeat (the file's mtime)}, or None when the run is not claimed. A file being written
    (or left empty by a crash) reads as {"heartbeat": mtime} alone: live until it is
    `stale_after_s` old.

    Raises:
      DamagedFileError: claim.json is neither empty nor a claim record (naming it).
    """
    return read_claim_file(Path(run_dir) / CLAIM)


def is_stale(
    claim: dict, *, stale_after_s: float = STALE_AFTER_S, now: float | None = None
) -> bool:
    """Whether a claim may be taken over: its pid is dead in this kernel and pid namespace, or
    it had no heartbeat for `stale_after_s` seconds before `now` (pass `fs_now(run_dir)`;
    None = this host's clock)."""
    me = identity()
    same_process_space = all(
        claim.get(key) is not None and claim.get(key) == me[key]
        for key in ("host", "boot_id", "pid_ns")
    )
    if same_process_space and not _pid_alive(int(claim["pid"])):
        return True
    return (time.time() if now is None else now) - claim["heartbeat"] > stale_after_s


class Claim:
    """A held claim: a heartbeat thread renews the file until `release()`; `check()` fences.

    Use `try_claim` to obtain one. A context manager: leaving the block releases it.

    Attributes:
      path: the claim.json file.
      token: the random token the file holds while this claim owns it.
    """

    def __init__(self, path: Path, fd: int, token: str, *, heartbeat_s: float, stale_after_s):
        self.path = path
        self.token = token
        self._fd = fd
        self._bound = stale_after_s / 2
        self._renewed = _elapsed_clock()
        self._lost: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(heartbeat_s,), name=f"claim:{path}", daemon=True
        )
        self._thread.start()

    def _renew(self) -> None:
        """Touches the file, then reads it back (in this order, so that a taker who renamed
        it after our read judges it by our fresh touch).

        Raises:
          ClaimLostError: the file no longer holds this claim's token.
          OSError: the touch or the read failed (maybe transiently).
        """
        os.utime(self._fd)
        try:
            current = read_claim_file(self.path)
        except DamagedFileError as e:
            raise ClaimLostError(f"{self.path} was replaced by a damaged file ({e})") from e
        if current is None or current.get("token") != self.token:
            holder = "nobody"
            if current is not None:
                holder = f"{current.get('host')} pid {current.get('pid')}"
            raise ClaimLostError(f"{self.path} was taken over (now held by {holder})")
        self._renewed = _elapsed_clock()

    def _try_renew(self) -> bool:
        """Renews under the lock; False on a transient error still within the bound.

        Raises:
          ClaimLostError: taken over, or not renewed for `stale_after_s / 2`.
        """
        with self._lock:
            if self._lost is not None:
                raise ClaimLostError(self._lost)
            try:
                self._renew()
                return True
            except ClaimLostError as e:
                self._lost = str(e)
                raise
            except OSError as e:
                late = _elapsed_clock() - self._renewed
                if late <= self._bound:
                    return False
                self._lost = (
                    f"{self.path} could not be renewed for {late:.0f} s (more than "
                    f"{self._bound:.0f} s, half the stale time; last error {e!r})"
                )
                raise ClaimLostError(self._lost) from e

    def _beat(self, period: float) -> None:
        wait = period
        while not self._stop.wait(wait):
            try:
                wait = period if self._try_renew() else min(period, _RETRY_S)
            except ClaimLostError:
                return

    @property
    def lost(self) -> str | None:
        """Why the claim is lost (taken over, or not renewed in time), or None while held."""
        return self._lost

    def check(self) -> None:
        """The fence, called before every write to the run: renews the claim and returns if it
        is still this process's (also after a transient error, while the last renewal is less
        than `stale_after_s / 2` old).

        Raises:
          ClaimLostError: the claim was taken over or could not be renewed in time.
        """
        self._try_renew()

    @property
    def held(self) -> bool:
        """Whether claim.json still holds this claim's token."""
        try:
            current = read_claim_file(self.path)
        except (DamagedFileError, OSError):
            return False
        return current is not None and current.get("token") == self.token

    def release(self) -> None:
        """Stops the heartbeat and deletes claim.json if it is still this claim's. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        if self.held:
            self.path.unlink(missing_ok=True)
            fsync_dir(self.path.parent)
        os.close(self._fd)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _create(path: Path, token: str, heartbeat_s: float, stale_after_s: float) -> Claim | None:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return None
    record = {**identity(), "started": time.time(), "heartbeat_s": heartbeat_s, "token": token}
    os.write(fd, json.dumps(record).encode())
    os.fsync(fd)
    fsync_dir(path.parent)
    return Claim(path, fd, token, heartbeat_s=heartbeat_s, stale_after_s=stale_after_s)


def _take_over(path: Path, judged: dict, stale_after_s: float, token: str) -> bool:
    """Removes the claim `judged` if claim.json is still that one and still stale (or holds
    `token`: this process's own earlier attempt); True if removed."""
    private = path.with_name(f"{CLAIM}.stale-{uuid.uuid4().hex}")
    try:
        os.rename(path, private)  # of several takers, one renames; the others find nothing
    except FileNotFoundError:
        return False
    try:
        held = read_claim_file(private)
    except DamagedFileError:
        held = None
    if (
        held is not None
        and held.get("token") == judged.get("token")
        and (
            held.get("token") == token
            or is_stale(held, stale_after_s=stale_after_s, now=fs_now(path.parent))
        )
    ):
        private.unlink()
        return True
    # Not the claim we judged (it was replaced, or its owner beat in between): put it back
    # unless a new claim appeared meanwhile, in which case that one stands.
    try:
        os.link(private, path)
    except FileExistsError:
        pass
    private.unlink()
    return False


def try_claim(
    run_dir: str | os.PathLike,
    *,
    stale_after_s: float = STALE_AFTER_S,
    heartbeat_s: float = HEARTBEAT_S,
    token: str | None = None,
) -> Claim | None:
    """Claims a run for this process, taking over a stale claim; None if another holds it.

    Args:
      run_dir: the run's folder (created if missing).
      stale_after_s: a claim not touched for this long is stale (also: a dead pid in this
        kernel and pid namespace).
      heartbeat_s: how often the held claim's file is renewed.
      token: the claim's token (None = a fresh random one). A claim.json that already holds
        this token is an earlier attempt of the same task (a Ray retry after its worker died)
        and is taken over at once, stale or not.

    Raises:
      ValueError: `heartbeat_s` not below `stale_after_s / 2`, or a non-positive one.
      DamagedFileError: claim.json is damaged (naming it).
    """
    if not 0 < heartbeat_s < stale_after_s / 2:
        raise ValueError(
            f"heartbeat_s must be in (0, stale_after_s / 2 = {stale_after_s / 2!r}), got "
            f"{heartbeat_s!r}."
        )
    token = token or uuid.uuid4().hex
    path = Path(run_dir) / CLAIM
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):  # a claim released or taken over between our steps: look again
        claim = _create(path, token, heartbeat_s, stale_after_s)
        if claim is not None:
            return claim
        current = read_claim(run_dir)
        if current is None:
            continue
        own = current.get("token") == token
        if not own and not is_stale(current, stale_after_s=stale_after_s, now=fs_now(path.parent)):
            return None
        _take_over(path, current, stale_after_s, token)
    return None


def release_abandoned(run_dir: str | os.PathLike, token: str) -> bool:
    """Deletes claim.json if it holds `token` (the claim of a task that died); True if so."""
    path = Path(run_dir) / CLAIM
    try:
        current = read_claim(run_dir)
    except DamagedFileError:
        return False
    if current is None or current.get("token") != token:
        return False
    return _take_over(path, current, STALE_AFTER_S, token)


def mark_failed(run_dir: str | os.PathLike, error: str) -> str:
    """Writes `<run_dir>/failed.json` (error, host, pid, time, id) atomically and durably;
    returns its id."""
    me = identity()
    record = {
        "error": error,
        "host": me["host"],
        "pid": me["pid"],
        "time": time.time(),
        "id": uuid.uuid4().hex,
    }
    write_json_atomic(Path(run_dir) / FAILED, record)
    return record["id"]


def read_failed(run_dir: str | os.PathLike) -> dict | None:
    """The run's failed.json record (with its "id"), or None.

    Raises:
      DamagedFileError: failed.json is damaged (naming it).
    """
    return read_failure(Path(run_dir) / FAILED)


def clear_failed(run_dir: str | os.PathLike) -> None:
    (Path(run_dir) / FAILED).unlink(missing_ok=True)
