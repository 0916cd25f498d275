"""Claims: a lock file per run, so that any number of sweep processes split a sweep.

A run is claimed before it trains by creating `<run workdir>/claim.json` with `O_CREAT|O_EXCL`
(atomic on a local or NFSv3+ file system): exactly one creator wins. The file holds the
claimer's host, pid, start time and heartbeat period; its heartbeat is the file's
modification time, touched through the open descriptor by a daemon thread every
`heartbeat_s` (so a claim that was taken over is never refreshed by its old owner).

A claim is stale when its pid is dead on this host, or when it has not been touched for
`stale_after_s` (a process on another host, or one that hangs; across hosts this compares the
file server's mtime with this host's clock, so `stale_after_s` should dwarf any clock skew).
A stale claim is taken over atomically: the taker renames it to a private name (one renamer
wins), checks that the file it now holds is the stale one it judged, deletes it, and creates
its own with `O_EXCL`.

A run that fails leaves `failed.json` (its error, host, pid, time) beside the released claim:
peers started before the failure skip it; a sweep started afterwards retries it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from pe_jax.runfiles import CLAIM, FAILED

HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def read_claim(run_dir: str | os.PathLike) -> dict | None:
    """The claim of a run as {host, pid, started, heartbeat_s, token, heartbeat (the file's
    mtime)}, or None when the run is not claimed. A file being written (or left empty by a
    crash) reads as {"heartbeat": mtime} alone: live until it is `stale_after_s` old."""
    return _read(Path(run_dir) / CLAIM)


def _read(path: Path) -> dict | None:
    try:
        mtime = path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = {}
    return {**data, "heartbeat": mtime}


def is_stale(
    claim: dict, *, stale_after_s: float = STALE_AFTER_S, now: float | None = None
) -> bool:
    """Whether a claim may be taken over: a dead pid on this host, or no heartbeat for
    `stale_after_s` seconds."""
    same_host = claim.get("host") == socket.gethostname()
    if same_host and "pid" in claim and not _pid_alive(int(claim["pid"])):
        return True
    return (time.time() if now is None else now) - claim["heartbeat"] > stale_after_s


class Claim:
    """A held claim: a heartbeat thread touches the file until `release()`.

    Use `try_claim` to obtain one. A context manager: leaving the block releases it.
    """

    def __init__(self, path: Path, fd: int, *, heartbeat_s: float):
        self.path = path
        self._fd = fd
        self._ino = os.fstat(fd).st_ino
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(heartbeat_s,), name=f"claim:{path}", daemon=True
        )
        self._thread.start()

    def _beat(self, period: float) -> None:
        while not self._stop.wait(period):
            try:
                os.utime(self._fd)
            except OSError:  # the descriptor is closed by release()
                return

    @property
    def held(self) -> bool:
        """Whether claim.json is still this claim's file (not taken over as stale)."""
        try:
            return os.stat(self.path).st_ino == self._ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Stops the heartbeat and deletes claim.json if it is still this claim's. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        if self.held:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _create(path: Path, heartbeat_s: float) -> Claim | None:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return None
    record = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.time(),
        "heartbeat_s": heartbeat_s,
        "token": uuid.uuid4().hex,
    }
    os.write(fd, json.dumps(record).encode())
    os.fsync(fd)
    return Claim(path, fd, heartbeat_s=heartbeat_s)


def _take_over(path: Path, judged: dict, stale_after_s: float) -> bool:
    """Removes the stale claim `judged` if claim.json is still that one; True if removed."""
    private = path.with_name(f"{CLAIM}.stale-{uuid.uuid4().hex}")
    try:
        os.rename(path, private)  # of several takers, one renames; the others find nothing
    except FileNotFoundError:
        return False
    held = _read(private)
    if (
        held is not None
        and held.get("token") == judged.get("token")
        and is_stale(held, stale_after_s=stale_after_s)
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
) -> Claim | None:
    """Claims a run for this process, taking over a stale claim; None if another holds it.

    Args:
      run_dir: the run's folder (created if missing).
      stale_after_s: a claim not touched for this long is stale (also: a dead pid on this host).
      heartbeat_s: how often the held claim's file is touched.

    Raises:
      ValueError: `heartbeat_s` not below `stale_after_s`, or a non-positive one.
    """
    if not 0 < heartbeat_s < stale_after_s:
        raise ValueError(
            f"heartbeat_s must be in (0, stale_after_s={stale_after_s!r}), got {heartbeat_s!r}."
        )
    path = Path(run_dir) / CLAIM
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):  # a claim released or taken over between our steps: look again
        claim = _create(path, heartbeat_s)
        if claim is not None:
            return claim
        current = read_claim(run_dir)
        if current is None:
            continue
        if not is_stale(current, stale_after_s=stale_after_s):
            return None
        _take_over(path, current, stale_after_s)
    return None


def mark_failed(run_dir: str | os.PathLike, error: str) -> None:
    """Writes `<run_dir>/failed.json` (error, host, pid, time) atomically."""
    path = Path(run_dir) / FAILED
    tmp = path.with_name(f"{FAILED}.{uuid.uuid4().hex}.tmp")
    record = {"error": error, "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def failed_since(run_dir: str | os.PathLike, since: float) -> str | None:
    """The error of a failure recorded at or after `since` (a time.time()), else None."""
    path = Path(run_dir) / FAILED
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return record["error"] if record.get("time", 0.0) >= since else None


def clear_failed(run_dir: str | os.PathLike) -> None:
    (Path(run_dir) / FAILED).unlink(missing_ok=True)
