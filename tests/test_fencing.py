"""Issue 28: a run whose claim is lost writes nothing more; --overwrite never follows a symlink;
a damaged claim.json or failed.json fails one run; signals stop a sweep cleanly; Ray retries
reclaim their own claim; run files are durable; a run too large for memory is refused first."""

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from configs.copy import get_config as copy_config
from configs.sweeps.smoke import get_config as smoke_sweep
from pe_jax import runfiles
from pe_jax.evaluation import summarize
from pe_jax.sweep import ClaimLostError, expand_sweep, read_claim, run_sweep, try_claim
from pe_jax.sweep._claims import CLAIM, FAILED, identity, mark_failed, release_abandoned
from pe_jax.sweep._runner import ClaimOptions, run_claimed
from pe_jax.training import check_config, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quiet(_):
    pass


def _age(path, seconds):
    """Makes `path` look untouched for `seconds` (a heartbeat that stopped that long ago)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _files(root, skip=(CLAIM,)) -> dict:
    """{relative path: sha256} of every file under `root` but `skip`."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def _wait(condition, timeout=10.0):
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline:
        time.sleep(0.05)
    return condition()


def _smoke_runs():
    return {run.name: run for run in expand_sweep(smoke_sweep())}


# --- fencing ------------------------------------------------------------------------------


def test_a_transient_heartbeat_error_is_retried(tmp_path, monkeypatch):
    real = os.utime
    failed = []

    def flaky(target, *args, **kwargs):
        if isinstance(target, int) and not failed:  # the heartbeat's touch, once
            failed.append(target)
            raise OSError(errno.ESTALE, "Stale file handle")
        return real(target, *args, **kwargs)

    monkeypatch.setattr(os, "utime", flaky)
    with try_claim(tmp_path, heartbeat_s=0.05, stale_after_s=60) as claim:
        assert _wait(lambda: failed)
        real(claim.path, (0, 0))
        assert _wait(lambda: time.time() - read_claim(tmp_path)["heartbeat"] < 5)
        assert claim.lost is None
        claim.check()  # still held


def test_a_claim_that_cannot_be_renewed_is_lost_within_half_the_stale_time(tmp_path, monkeypatch):
    real = os.utime

    def broken(target, *args, **kwargs):
        if isinstance(target, int):
            raise OSError(errno.ESTALE, "Stale file handle")
        return real(target, *args, **kwargs)

    monkeypatch.setattr(os, "utime", broken)
    with try_claim(tmp_path, heartbeat_s=0.05, stale_after_s=1.0) as claim:
        assert _wait(lambda: claim.lost is not None, timeout=5)
        assert "could not be renewed" in claim.lost
        with pytest.raises(ClaimLostError, match="could not be renewed"):
            claim.check()


def test_a_stopped_owner_whose_claim_was_taken_over_writes_nothing_more(tmp_path):
    run = _smoke_runs()["copy/none"]
    run_dir = run.workdir(tmp_path)
    seen = {}

    def log(line):
        if line.startswith("step ") and "peer" not in seen:
            # The owner was stopped (SIGSTOP, a Slurm suspend) past the stale time: its claim
            # was not touched for longer than stale_after_s, and a peer takes the run over.
            _age(run_dir / CLAIM, 120)
            seen["peer"] = try_claim(run_dir, stale_after_s=60, heartbeat_s=10)
            seen["files"] = _files(run_dir)

    claims = ClaimOptions(stale_after_s=60, heartbeat_s=20)
    outcome = run_claimed(run, tmp_path, overwrite=False, claims=claims, log=log)
    peer = seen["peer"]
    assert peer is not None and peer.held
    assert outcome.status == "lost" and "taken over" in outcome.error
    assert _files(run_dir) == seen["files"]  # no checkpoint, metrics line or results after it
    assert not (run_dir / "results.json").exists() and not (run_dir / FAILED).exists()
    peer.release()


def test_a_claim_from_another_pid_namespace_on_this_host_is_not_judged_by_its_pid(tmp_path):
    # Two containers sharing a hostname but not a pid namespace: the pid means nothing here.
    record = {**identity(), "pid": _dead_pid(), "pid_ns": "pid:[1]", "token": "theirs"}
    (tmp_path / CLAIM).write_text(json.dumps(record))
    assert try_claim(tmp_path) is None  # live until its heartbeat is stale
    _age(tmp_path / CLAIM, 700)
    claim = try_claim(tmp_path)
    assert claim is not None and read_claim(tmp_path)["token"] == claim.token
    claim.release()


def test_staleness_compares_no_host_clocks(tmp_path, monkeypatch):
    # This host's clock runs a day ahead: a claim another host renewed just now stays live,
    # because its age is the file server's mtime against a probe file's mtime.
    record = {"host": "elsewhere", "pid": 1, "token": "theirs", "boot_id": "b", "pid_ns": "p"}
    (tmp_path / CLAIM).write_text(json.dumps(record))
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 86400)
    assert try_claim(tmp_path) is None


# --- overwrite ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished smoke run evaluated only at training lengths (checkpoints 10 and 20)."""
    workdir = tmp_path_factory.mktemp("finished") / "run"
    train_and_evaluate(copy_config("smoke,eval.lengths=1;2;4"), workdir, log=quiet)
    return workdir


@pytest.fixture
def run(finished, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


OTHER = "smoke,eval.lengths=1;2;4,train.learning_rate=0.002"


def test_eval_lengths_without_out_of_distribution_give_null_not_nan(finished):
    text = (finished / "results.json").read_text()
    assert "NaN" not in text
    summary = json.loads(text)["summary"]
    assert summary["token_accuracy"]["out_of_distribution"] == [None]
    assert summarize([1, 2], np.ones((2, 2)), train_max=4)["out_of_distribution"] == [None] * 2


def test_overwrite_unlinks_a_symlinked_checkpoints_folder_and_keeps_its_target(run, tmp_path):
    outside = tmp_path / "outside"
    shutil.move(run / "checkpoints", outside)
    (run / "checkpoints").symlink_to(outside)
    before = _files(outside)
    results = train_and_evaluate(copy_config(OTHER), run, overwrite=True, log=quiet)
    assert _files(outside) == before  # the link's target outside the workdir is untouched
    assert not (run / "checkpoints").is_symlink()
    assert results["steps_run_this_session"] == results["steps"]  # trained afresh


def test_overwrite_that_cannot_remove_the_old_checkpoints_stops_naming_them(run, monkeypatch):
    def stuck(path, ignore_errors=False, **kwargs):  # a file the user may not delete
        if not ignore_errors:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(shutil, "rmtree", stuck)
    old_config = (run / "config.json").read_text()
    with pytest.raises(RuntimeError, match=re.escape(str(run / "checkpoints"))):
        train_and_evaluate(copy_config(OTHER), run, overwrite=True, log=quiet)
    assert (run / "config.json").read_text() == old_config  # nothing of the new run written


# --- damaged claim.json and failed.json ---------------------------------------------------

CLAIM_DAMAGES = {
    "binary": b"\xff\xfe\x00\x81garbage",
    "array": b"[]",
    "pid_text": json.dumps({"host": "h", "pid": "abc", "token": "t"}).encode(),
}
FAILED_DAMAGES = {
    "binary": b"\xff\xfe\x00\x81garbage",
    "array": b"[]",
    "no_error": json.dumps({"host": "h", "pid": 1, "time": 0}).encode(),
}


@pytest.mark.parametrize("name, file, data", [
    *[(k, CLAIM, v) for k, v in CLAIM_DAMAGES.items()],
    *[(k, FAILED, v) for k, v in FAILED_DAMAGES.items()],
])  # fmt: skip
def test_a_damaged_claim_or_failure_fails_that_run_naming_the_file(tmp_path, name, file, data):
    run = _smoke_runs()["copy/none"]
    run_dir = run.workdir(tmp_path)
    run_dir.mkdir(parents=True)
    (run_dir / file).write_bytes(data)
    outcome = run_claimed(run, tmp_path, overwrite=False, claims=ClaimOptions(), log=quiet)
    assert outcome.status == "failed" and str(run_dir / file) in outcome.error, outcome
    assert not (run_dir / "config.json").exists()  # not trained


def test_the_sweep_goes_on_past_a_damaged_claim_and_retries_a_future_stamped_failure(tmp_path):
    runs = _smoke_runs()
    damaged = runs["copy/none"].workdir(tmp_path)
    damaged.mkdir(parents=True)
    (damaged / CLAIM).write_bytes(CLAIM_DAMAGES["binary"])
    # A failure stamped a day ahead by another host's clock: failed before this sweep began.
    retried = runs["copy/alibi"].workdir(tmp_path)
    retried.mkdir(parents=True)
    mark_failed(retried, "an earlier failure")
    record = json.loads((retried / FAILED).read_text())
    (retried / FAILED).write_text(json.dumps({**record, "time": time.time() + 86400}))
    out = run_sweep(smoke_sweep(), tmp_path, log=quiet)
    assert (
        list(out["failed"]) == ["copy/none"] and str(damaged / CLAIM) in out["failed"]["copy/none"]
    )
    assert out["trained"] == ["copy/alibi"] and not (retried / FAILED).exists()


def test_a_failure_recorded_during_the_sweep_is_reported_not_retried(tmp_path):
    run = _smoke_runs()["copy/none"]
    run.workdir(tmp_path).mkdir(parents=True)
    mark_failed(run.workdir(tmp_path), "a peer's failure")
    outcome = run_claimed(run, tmp_path, overwrite=False, claims=ClaimOptions(), log=quiet)
    assert outcome.status == "failed" and outcome.error == "a peer's failure"
    assert read_claim(run.workdir(tmp_path)) is None


def test_retry_failed_retries_a_failure_recorded_during_the_sweep(tmp_path):
    run = _smoke_runs()["copy/none"]
    run.workdir(tmp_path).mkdir(parents=True)
    mark_failed(run.workdir(tmp_path), "a peer's failure")
    claims = ClaimOptions(retry_failed=True)
    outcome = run_claimed(run, tmp_path, overwrite=False, claims=claims, log=quiet)
    assert outcome.status == "trained" and not (run.workdir(tmp_path) / FAILED).exists()


# --- signals ------------------------------------------------------------------------------


def test_a_stop_checkpoints_the_running_run_cancels_the_queued_and_a_rerun_resumes(tmp_path):
    logged = []
    out = run_sweep(
        smoke_sweep(), tmp_path, log=logged.append, stop=lambda: any("step " in m for m in logged)
    )
    assert out["interrupted"] == ["copy/none"] and out["cancelled"] == ["copy/alibi"]
    assert not out["failed"] and not out["trained"]
    assert not list(tmp_path.rglob(CLAIM)) and not list(tmp_path.rglob(FAILED))
    assert (tmp_path / "copy" / "none" / "checkpoints" / "11").is_dir()  # the step it reached

    logged = []
    again = run_sweep(smoke_sweep(), tmp_path, only="copy/none", log=logged.append)
    assert again["trained"] == ["copy/none"]
    assert any("resumed from step 11" in m for m in logged), logged
    assert again["results"]["copy/none"]["steps_run_this_session"] == 9


@pytest.mark.parametrize("signum, group", [(signal.SIGINT, True), (signal.SIGTERM, False)])
def test_a_signalled_sweep_with_workers_fails_nothing_and_exits_128_plus_signal(
    tmp_path, signum, group
):
    cmd = [
        sys.executable, "-m", "experiments.sweep", "--config=configs/sweeps/smoke.py",
        f"--workdir={tmp_path}", "--workers=2", "--config.overrides.train.steps=2000",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    run = tmp_path / "copy" / "none"
    assert _wait(lambda: (run / "checkpoints" / "10").is_dir(), timeout=300), proc.poll()
    if group:  # Ctrl-C: the terminal signals the whole process group
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 128 + signum, out
    assert "FAILED" not in out and not list(tmp_path.rglob(FAILED)), out
    assert not list(tmp_path.rglob(CLAIM)), out  # released
    assert "stopped on request" in out


# --- Ray retries --------------------------------------------------------------------------


def test_a_retried_task_reclaims_its_own_claim_by_token(tmp_path):
    # The first attempt died on another node; its claim looks live there for stale_after_s.
    record = {"host": "node-a", "pid": 4242, "token": "run-token", "boot_id": "b", "pid_ns": "p"}
    (tmp_path / CLAIM).write_text(json.dumps(record))
    assert try_claim(tmp_path, token="another-token") is None
    claim = try_claim(tmp_path, token="run-token")
    assert claim is not None and read_claim(tmp_path)["pid"] == os.getpid()
    claim.release()


def test_the_driver_releases_only_its_dead_tasks_claim(tmp_path):
    (tmp_path / CLAIM).write_text(json.dumps({"host": "n", "pid": 1, "token": "mine"}))
    assert not release_abandoned(tmp_path, "someone-else") and (tmp_path / CLAIM).exists()
    assert release_abandoned(tmp_path, "mine") and not (tmp_path / CLAIM).exists()


def test_the_sweep_says_what_is_pending_and_who_holds_it(tmp_path):
    run_dir = tmp_path / "copy" / "none"
    run_dir.mkdir(parents=True)
    record = {"host": "node-b", "pid": 77, "token": "t", "boot_id": "b", "pid_ns": "p"}
    (run_dir / CLAIM).write_text(json.dumps(record))
    logged = []
    out = run_sweep(smoke_sweep(), tmp_path, only="copy/none", log=logged.append)
    assert out["claimed"] == ["copy/none"] and not out["complete"]
    assert out["pending"] == {"copy/none": "held by node-b pid 77"}
    assert any("pending copy/none: held by node-b pid 77" in m for m in logged)


# --- durability ---------------------------------------------------------------------------


@pytest.fixture
def fsynced(monkeypatch):
    """The paths os.fsync is called on (files by their name at the time, folders)."""
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return synced


def _minimal_results():
    return runfiles.Results.from_json(
        dict(
            task="copy", protocol="encoder", encoding="none", seeds=[0], train_max_length=4,
            lengths=[1], metrics={}, summary={}, num_params=1, steps=1, time_per_step_s=0.1,
        )
    )  # fmt: skip


@pytest.mark.parametrize("what", ["results", "manifest", "failed", "claim", "report"])
def test_run_files_are_fsynced_with_their_folder(tmp_path, fsynced, what):
    name = {
        "results": lambda: runfiles.write_results(tmp_path, _minimal_results()),
        "manifest": lambda: runfiles.write_manifest(tmp_path, {"runs": []}),
        "failed": lambda: mark_failed(tmp_path, "boom"),
        "claim": lambda: try_claim(tmp_path).release(),
        "report": lambda: runfiles.write_text_atomic(tmp_path / "report.md", "# r\n"),
    }[what]
    name()
    assert str(tmp_path) in fsynced, fsynced  # the rename (or creation) itself is durable
    assert any(os.path.dirname(p) == str(tmp_path) for p in fsynced if p != str(tmp_path))


def test_an_atomic_write_that_fails_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "report.md"
    runfiles.write_text_atomic(path, "old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        runfiles.write_text_atomic(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.md"]


# --- resources ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arg, driver",
    [
        ("task_options.num_symbols=1000000000", "vocabulary of 1000000004 tokens"),
        ("train.batch_size=1000000000", "train.batch_size=1000000000"),
        ("eval.lengths=1;10000000", "eval lengths up to 10000000"),
        ("model.width=10000000", "model.width=10000000"),
    ],
)
def test_a_run_too_large_for_memory_is_refused_at_once_naming_why(tmp_path, arg, driver):
    config = copy_config(f"smoke,{arg}")
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as info:
        check_config(config)
    assert time.perf_counter() - t0 < 1.0
    message = str(info.value)
    assert re.search(r"needs about [\d.e+]+ GiB", message) and "is available" in message
    assert driver in message, message
    with pytest.raises(ValueError, match="GiB"):
        train_and_evaluate(config, tmp_path / "fresh", log=quiet)
    assert not (tmp_path / "fresh").exists()
