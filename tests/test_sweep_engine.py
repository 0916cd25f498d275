"""Sweeps beyond one process: claims, --workers, --shard, concurrent sweep processes, Ray,
a killed worker resumed, a failing run reported while the others finish."""

import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from configs.sweeps.smoke import get_config
from pe_jax.sweep import make_executor, parse_shard, read_claim, run_sweep, try_claim
from pe_jax.sweep._claims import CLAIM, identity

RUNS = ["copy/none", "copy/alibi"]
SMOKE = "--config=configs/sweeps/smoke.py"
# What a run computes; timings, compile counts and the host differ between executors.
COMPARED = ("config", "lengths", "metrics", "summary", "bucket_means", "num_params", "steps")


def _sweep_cmd(workdir, *flags):
    return [sys.executable, "-m", "experiments.sweep", SMOKE, f"--workdir={workdir}", *flags]


def _run_together(commands, timeout=600):
    """Starts the commands at once; returns their combined stdout+stderr after all end."""
    procs = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for c in commands
    ]
    outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out
    return outputs


def _results(workdir, runs=RUNS):
    out = {}
    for name in runs:
        results = json.loads((workdir / name / "results.json").read_text())
        out[name] = {k: results[k] for k in COMPARED}
    return out


def _assert_close(a, b, path="results"):
    """Equal structure and non-float values; floats equal to float32 rounding (a worker pinned
    to one core compiles with single-threaded XLA flags, which may round differently)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            _assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6), path
    else:
        assert a == b, path


def _trained_once(workdir, outputs, runs=RUNS):
    """Each run trained by exactly one process, its metrics log without duplicate steps."""
    done = collections.Counter(
        m for out in outputs for m in re.findall(r"\] (copy/\w+): done in", out)
    )
    assert done == {name: 1 for name in runs}, outputs
    for name in runs:
        steps = [
            json.loads(line)["step"]
            for line in (workdir / name / "metrics.jsonl").read_text().splitlines()
            if "event" not in json.loads(line)
        ]
        assert steps == list(range(1, 21)), (name, steps)  # every step once, in order
        results = json.loads((workdir / name / "results.json").read_text())
        assert results["steps_run_this_session"] == 20  # never resumed or retrained
        assert not (workdir / name / CLAIM).exists()  # released


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The smoke sweep in this process, one run after another: what every executor must give."""
    workdir = tmp_path_factory.mktemp("reference")
    run_sweep(get_config(), workdir, log=lambda _: None)
    return _results(workdir)


# --- claims -------------------------------------------------------------------------------


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claim_is_exclusive_and_released(tmp_path):
    first = try_claim(tmp_path)
    assert first is not None and first.held
    record = read_claim(tmp_path)
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert {"started", "heartbeat", "heartbeat_s", "token"} <= set(record)
    assert try_claim(tmp_path) is None  # live: not taken over
    first.release()
    assert read_claim(tmp_path) is None
    second = try_claim(tmp_path)
    assert second is not None
    second.release()


def test_heartbeat_touches_the_claim(tmp_path):
    with try_claim(tmp_path, heartbeat_s=0.05) as claim:
        os.utime(claim.path, (0, 0))
        time.sleep(0.5)
        assert time.time() - read_claim(tmp_path)["heartbeat"] < 1.0


def test_claim_of_a_dead_pid_is_taken_over(tmp_path):
    record = {**identity(), "pid": _dead_pid(), "started": 0, "token": "old"}
    (tmp_path / CLAIM).write_text(json.dumps(record))
    claim = try_claim(tmp_path)
    assert claim is not None and read_claim(tmp_path)["pid"] == os.getpid()
    claim.release()
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing left behind


def test_claim_without_heartbeat_is_taken_over_and_the_old_owner_sees_it(tmp_path):
    old = try_claim(tmp_path, heartbeat_s=50, stale_after_s=200)
    os.utime(old.path, (time.time() - 300, time.time() - 300))
    assert try_claim(tmp_path, stale_after_s=1000) is None  # not stale at a longer limit
    new = try_claim(tmp_path, stale_after_s=200)
    assert new is not None and not old.held and new.held
    old.release()  # must not delete the new owner's claim
    assert new.held
    new.release()


def test_bad_claim_and_shard_arguments():
    with pytest.raises(ValueError, match="heartbeat_s"):
        try_claim("/tmp", heartbeat_s=10, stale_after_s=5)
    assert parse_shard("1/3") == (1, 3) and parse_shard("") is None
    for bad in ("3/3", "a/b", "1", "-1/2"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    with pytest.raises(ValueError, match="workers"):
        make_executor("local", workers=0)
    with pytest.raises(ValueError, match="executor"):
        make_executor("slurm")


# --- executors ----------------------------------------------------------------------------


def test_two_local_workers_equal_one(reference, tmp_path):
    (out,) = _run_together([_sweep_cmd(tmp_path, "--workers=2")])
    assert re.search(r"started in worker pid \d+ on cores", out)
    _trained_once(tmp_path, [out])
    _assert_close(_results(tmp_path), reference)
    assert (tmp_path / "report.md").exists()


def test_shards_run_at_once_cover_the_sweep_exactly_once(reference, tmp_path):
    outputs = _run_together([_sweep_cmd(tmp_path, f"--shard={i}/2") for i in range(2)])
    _trained_once(tmp_path, outputs)
    assert "copy/none" in outputs[0] and "copy/alibi" not in outputs[0]
    assert _results(tmp_path) == reference
    assert (tmp_path / "report.md").exists()  # written by whichever finished last


@pytest.mark.parametrize("processes", [2, 3])
def test_concurrent_sweeps_on_one_workdir_train_every_run_once(reference, tmp_path, processes):
    outputs = _run_together([_sweep_cmd(tmp_path)] * processes)
    _trained_once(tmp_path, outputs)
    assert _results(tmp_path) == reference
    assert (tmp_path / "report.md").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_ray_executor_equals_local(reference, tmp_path):
    import ray  # noqa: F401  (in the test extra: the Ray executor is always tested)

    (out,) = _run_together([_sweep_cmd(tmp_path, "--executor=ray", "--workers=2")])
    assert "submitted 2 Ray tasks" in out
    _trained_once(tmp_path, [out])
    assert _results(tmp_path) == reference


def test_killed_worker_is_resumed_from_its_checkpoint(tmp_path):
    steps = 400  # long enough to be killed after a checkpoint, before the end
    cmd = _sweep_cmd(
        tmp_path, "--workers=2", "--only=*/none", f"--config.overrides.train.steps={steps}"
    )
    sweep = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = tmp_path / "copy" / "none"
    deadline = time.time() + 300
    while not any(p.name.isdigit() and int(p.name) >= 20 for p in (run / "checkpoints").glob("*")):
        assert time.time() < deadline and sweep.poll() is None, sweep.stdout.read()
        time.sleep(0.2)
    worker = read_claim(run)["pid"]
    assert worker != sweep.pid  # the run trains in a worker process
    os.kill(worker, signal.SIGKILL)
    out = sweep.communicate(timeout=120)[0]
    assert sweep.returncode != 0 and "copy/none: FAILED (worker pid" in out, out
    assert not (run / "results.json").exists()

    (rerun,) = _run_together([cmd])
    resumed = int(re.search(r"resumed from step (\d+)", rerun).group(1))
    assert resumed >= 20
    steps_logged = [
        json.loads(line)["step"]
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if "event" not in json.loads(line)
    ]
    assert steps_logged == list(range(1, steps + 1))  # no duplicate, none missing
    results = json.loads((run / "results.json").read_text())
    assert results["steps_run_this_session"] == steps - resumed
    assert not (run / "failed.json").exists() and not (run / CLAIM).exists()


def test_failing_run_is_reported_and_the_others_finish(tmp_path):
    config = get_config()
    config.encodings[0]["overrides"] = {"train": {"learning_rate": 1e30}}  # copy/none: NaN
    logs = []
    out = run_sweep(config, tmp_path, executor=make_executor("local", workers=2), log=logs.append)
    assert list(out["failed"]) == ["copy/none"] and "non-finite" in out["failed"]["copy/none"]
    assert out["trained"] == ["copy/alibi"] and out["complete"]
    assert "copy/none: FAILED (NonFiniteError: non-finite" in "\n".join(logs)
    failed = json.loads((tmp_path / "copy" / "none" / "failed.json").read_text())
    assert failed["error"] == out["failed"]["copy/none"]
    assert not (tmp_path / "copy" / "none" / CLAIM).exists()
