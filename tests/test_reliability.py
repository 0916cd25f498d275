"""Issue 15: bad values are refused before the workdir is touched, checkpoints are finite by
construction, and damaged run files are named (or repaired, or fallen back from)."""

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs.copy import get_config
from configs.sweeps.common import encoding, sweep_config
from pe_jax.reporting import write_report
from pe_jax.runfiles import FAILED, read_manifest, read_results, truncate_metrics
from pe_jax.sweep import run_sweep
from pe_jax.training import NonFiniteError, load_run, train_and_evaluate
from pe_jax.training import _run as run_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAMAGES = ("truncated", "empty", "garbage", "wrong_type")


def quiet(_):
    pass


def tree_hash(root) -> str:
    """A hash of every path and every file's bytes under `root`."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def damage(path, kind) -> None:
    data = path.read_bytes()
    path.write_bytes(
        {
            "truncated": data[: len(data) // 2],
            "empty": b"",
            "garbage": b"\xff\xfe\x00garbage\x80\x81" * 8,
            "wrong_type": b"[]",
        }[kind]
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished smoke run (checkpoints at steps 10 and 20), copied by the tests."""
    workdir = tmp_path_factory.mktemp("finished") / "run"
    train_and_evaluate(get_config("smoke"), workdir, log=quiet)
    return workdir


@pytest.fixture
def run(finished, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def cli(workdir, arg, *extra):
    return subprocess.run(
        [sys.executable, "-m", "experiments.train", f"--config=configs/copy.py:smoke,{arg}"]
        + [f"--workdir={workdir}", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ROOT},
    )


def attempt(workdir, arg, *, overwrite) -> str:
    """The message of the ValueError that `arg` raises, by the config argument or the run."""
    with pytest.raises(ValueError) as info:
        train_and_evaluate(get_config(f"smoke,{arg}"), workdir, overwrite=overwrite, log=quiet)
    return str(info.value)


def test_b1_bool_typo_exits_nonzero_naming_the_field(run, tmp_path):
    before = tree_hash(run)
    for extra in ([], ["--overwrite"]):
        proc = cli(run, "model.share_encoding=treu", *extra)
        assert proc.returncode != 0
        assert "model.share_encoding" in proc.stderr and "'treu'" in proc.stderr
        assert "true or false" in proc.stderr
        assert tree_hash(run) == before
    proc = cli(tmp_path / "fresh", "model.share_encoding=treu")
    assert proc.returncode != 0 and not (tmp_path / "fresh").exists()


@pytest.mark.parametrize(
    "arg, field, value, allowed",
    [
        ("model.width=abc", "model.width", "'abc'", "integer"),
        ("train.learning_rate=fast", "train.learning_rate", "'fast'", "number"),
        ("mesh_shape=abc", "mesh_shape", "'abc'", "two positive integers"),
        ("seeds=a", "seeds", "'a'", "integer"),
        ("seeds=1.5", "seeds", "1.5", "integer"),
        ("train.steps=1.5", "train.steps", "'1.5'", "integer"),
    ],
)
def test_b2_bad_value_names_field_value_and_allowed(run, tmp_path, arg, field, value, allowed):
    # The typed setter refuses some of these values itself (inside get_config); the run must
    # refuse them too, before touching the workdir, when they reach it by another way.
    try:
        config = get_config(f"smoke,{arg}")
    except ValueError as error:
        message = str(error)
        assert f"config.{field}" in message and value in message and allowed in message
        config = raw_config(arg)
    before = tree_hash(run)
    for overwrite in (False, True):
        with pytest.raises(ValueError) as info:
            train_and_evaluate(config, run, overwrite=overwrite, log=quiet)
        message = str(info.value)
        assert f"config.{field}" in message and value in message and allowed in message
        assert tree_hash(run) == before
    with pytest.raises(ValueError):
        train_and_evaluate(config, tmp_path / "fresh", overwrite=True, log=quiet)
    assert not (tmp_path / "fresh").exists()


def raw_config(arg: str) -> ml_collections.ConfigDict:
    """The smoke config with `arg`'s value set as the text it is, past the typed setter."""
    key, text = arg.split("=", 1)
    config = get_config("smoke")
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    with node.ignore_type():
        node[leaf] = text
    return config


@pytest.mark.parametrize(
    "arg, field",
    [
        ("train.learning_rate=-1", "train.learning_rate"),
        ("train.learning_rate=inf", "train.learning_rate"),
        ("train.learning_rate=nan", "train.learning_rate"),
        ("train.warmup_steps=30", "train.warmup_steps"),
        ("train.schedule=wavy", "train.schedule"),
        ("train.clip_norm=0", "train.clip_norm"),
        ("train.clip_norm=inf", "train.clip_norm"),
        ("train.optimizer=sgd", "train.optimizer"),
        ("train.weight_decay=-0.1", "train.weight_decay"),
        ("train.weight_decay=nan", "train.weight_decay"),
        ("train.weight_decay=0.1", "train.weight_decay"),  # Adam has no decoupled decay
        ("model.dropout=nan", "model.dropout"),
        ("model.encoding_options={'base': float('inf')}", "model.encoding_options.base"),
    ],
)
def test_b3_bad_value_is_refused_before_the_workdir_is_touched(run, tmp_path, arg, field):
    before = tree_hash(run)
    for overwrite in (False, True):
        message = attempt(run, arg.replace("float('inf')", "1e999"), overwrite=overwrite)
        assert f"config.{field}" in message
        assert tree_hash(run) == before  # checkpoints, metrics, results all kept
    attempt(tmp_path / "fresh", arg.replace("float('inf')", "1e999"), overwrite=True)
    assert not (tmp_path / "fresh").exists()  # no config.json left behind


def test_b3_cli_overwrite_deletes_nothing_for_a_bad_value(run):
    before = tree_hash(run)
    proc = cli(run, "train.learning_rate=-1", "--overwrite")
    assert proc.returncode != 0 and "config.train.learning_rate" in proc.stderr
    assert tree_hash(run) == before


def kept_checkpoints_are_finite(workdir) -> list[int]:
    """Restores every kept checkpoint, asserts its floating leaves finite, returns the steps."""
    manager = ocp.CheckpointManager((workdir / "checkpoints").absolute())
    steps = sorted(manager.all_steps())
    for step in steps:
        restored = manager.restore(step, args=ocp.args.StandardRestore())
        for leaf in jax.tree.leaves(restored):
            leaf = np.asarray(leaf)
            if np.issubdtype(leaf.dtype, np.floating):
                assert np.isfinite(leaf).all(), f"checkpoint {step} is not finite"
    return steps


def test_b4_no_kept_checkpoint_holds_non_finite_parameters(tmp_path):
    # A rate of 1e38 (just below float32's largest number) with a linear warmup from 0: the
    # first update is a no-op, so a finite checkpoint of step 1 is kept, and the next ones
    # drive the parameters to overflow within a few steps. Whichever check stops the run (the
    # parameters before a checkpoint, or the loss or gradient norm of a step), every kept
    # checkpoint restores to finite values, and there is at least one to check.
    config = get_config(
        "smoke,train.learning_rate=1e38,train.schedule=constant,train.warmup_steps=10,"
        "train.checkpoint_every=1,train.log_every=1"
    )
    with pytest.raises(NonFiniteError, match="non-finite") as info:
        train_and_evaluate(config, tmp_path, log=quiet)
    failed_at = int(re.search(r"step (\d+)", str(info.value)).group(1))
    kept = kept_checkpoints_are_finite(tmp_path)
    assert kept and max(kept) < failed_at, (kept, str(info.value))
    assert not (tmp_path / "results.json").exists()


def test_b4_nan_parameters_are_never_checkpointed(tmp_path, monkeypatch):
    # The update of step 15 turns the parameters into NaN while the loss and gradient norm of
    # that step (computed before the update) are finite: the checkpoint of step 15 must not
    # be written, and the run stops there.
    original = run_module.make_train_program

    def poisoned(*args, **kwargs):
        program = original(*args, **kwargs)
        calls = []

        def step(state, *rest):
            state, metrics = program.step(state, *rest)
            calls.append(1)
            if len(calls) == 15:
                nan = jax.tree.map(lambda x: x * jnp.nan, state["params"])
                state = {**state, "params": nan}
            return state, metrics

        return dataclasses.replace(program, step=step)

    monkeypatch.setattr(run_module, "make_train_program", poisoned)
    config = get_config("smoke,train.checkpoint_every=5,train.log_every=5")
    with pytest.raises(NonFiniteError, match="step 15"):
        train_and_evaluate(config, tmp_path, log=quiet)
    assert kept_checkpoints_are_finite(tmp_path) == [5, 10]


# --- B6: damaged files ---------------------------------------------------------------------


def assert_named(message, path):
    assert str(path) in message and "delete" in message and "--overwrite" in message, message


@pytest.mark.parametrize("kind", DAMAGES)
def test_b6_damaged_config_json_is_named_and_replaced_under_overwrite(run, kind):
    config = get_config("smoke")
    damage(run / "config.json", kind)
    before = tree_hash(run)
    with pytest.raises(ValueError) as info:
        train_and_evaluate(config, run, log=quiet)
    assert_named(str(info.value), run / "config.json")
    assert tree_hash(run) == before
    results = train_and_evaluate(config, run, overwrite=True, log=quiet)
    assert json.loads((run / "config.json").read_text()) == json.loads(config.to_json())
    assert results == json.loads((run / "results.json").read_text())


def test_b6_damaged_config_json_of_an_unfinished_run_restarts_it(run):
    (run / "results.json").unlink()
    damage(run / "config.json", "garbage")
    train_and_evaluate(get_config("smoke"), run, overwrite=True, log=quiet)
    assert read_results(run).steps_run_this_session == 20  # started afresh


@pytest.mark.parametrize("kind", DAMAGES)
def test_b6_damaged_results_json_is_named_and_rewritten_under_overwrite(run, kind):
    damage(run / "results.json", kind)
    with pytest.raises(ValueError) as info:
        read_results(run)
    assert_named(str(info.value), run / "results.json")
    before = tree_hash(run)
    with pytest.raises(ValueError) as info:
        train_and_evaluate(get_config("smoke"), run, log=quiet)
    assert_named(str(info.value), run / "results.json")
    assert tree_hash(run) == before
    if kind == "truncated":  # the checkpoints are whole: evaluated again, not retrained
        results = train_and_evaluate(get_config("smoke"), run, overwrite=True, log=quiet)
        assert results["steps_run_this_session"] == 0
        assert read_results(run).metrics == results["metrics"]


@pytest.mark.parametrize("kind", DAMAGES)
def test_b6_damaged_manifest_is_named(run, tmp_path, kind):
    sweep = tmp_path / "sweep"
    (sweep / "copy").mkdir(parents=True)
    shutil.copytree(run, sweep / "copy" / "rope")
    (sweep / "sweep.json").write_text(json.dumps({"name": "s", "runs": ["copy/rope"]}))
    damage(sweep / "sweep.json", kind)
    for read in (read_manifest, write_report):
        with pytest.raises(ValueError) as info:
            read(sweep)
        assert str(sweep / "sweep.json") in str(info.value) and "delete" in str(info.value)


@pytest.mark.parametrize(
    "tail",
    [
        b'{"step": 21, "loss"',  # truncated
        b"\xff\xfe\x00\x80 binary \x81\n",
        b"[]\n",
        b"5\n",
        b'{"step": "x"}\n',
        b'{"step": true}\n',
        b'{"loss": 1}\n',
        b"\n\n",
    ],
)
def test_b6_bad_metrics_lines_are_dropped(tmp_path, tail):
    path = tmp_path / "metrics.jsonl"
    good = b"".join(json.dumps({"step": s, "loss": [1.0]}).encode() + b"\n" for s in (5, 10, 15))
    path.write_bytes(good + tail + (b"" if tail.endswith(b"\n") else b"\n") + good)
    truncate_metrics(path, 10)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 5, 10]
    path.write_bytes(b"")
    truncate_metrics(path, 10)
    assert path.read_bytes() == b""


def test_b6_damaged_metrics_are_repaired_on_resume(run):
    (run / "results.json").unlink()
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b'\xff\xfe\x00 binary\n[]\n{"step": "x"}\n')
    results = train_and_evaluate(get_config("smoke"), run, log=quiet)
    assert results["steps_run_this_session"] == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "event" not in r] == list(range(1, 21))
    assert records[-1]["event"] == "eval"


def damage_checkpoint(workdir, step, kind):
    for path in (workdir / "checkpoints" / str(step)).rglob("*"):
        if path.is_file():
            damage(path, "garbage" if kind == "wrong_type" else kind)


@pytest.mark.parametrize("kind", ("truncated", "empty", "garbage"))
def test_b6_damaged_latest_checkpoint_loads_the_previous_one(run, kind):
    damage_checkpoint(run, 20, kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_run(run)
    assert loaded.step == 10
    text = " ".join(str(w.message) for w in caught)
    assert "checkpoint 20" in text and "step 10" in text


def test_b6_damaged_latest_checkpoint_resumes_from_the_previous_one(run):
    (run / "results.json").unlink()
    damage_checkpoint(run, 20, "garbage")
    logs = []
    results = train_and_evaluate(get_config("smoke"), run, log=logs.append)
    assert any("checkpoint 20" in line and "step 10" in line for line in logs), logs
    assert results["steps_run_this_session"] == 10
    assert load_run(run).step == 20  # the damaged step was replaced by a good one
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "event" not in r] == list(range(1, 21))


def two_run_sweep():
    """A sweep whose two runs have the config of the `finished` fixture."""
    sweep = sweep_config(
        name="damaged",
        tasks=[dict(label="copy", config=get_config("smoke"))],
        encodings=[encoding("a", "rope"), encoding("b", "rope")],
        seeds=(0,),
    )
    sweep.overrides = ml_collections.ConfigDict()
    return sweep


def test_b6_sweep_reports_a_damaged_run_and_goes_on(finished, tmp_path):
    root = tmp_path / "sweep"
    for label in ("a", "b"):
        shutil.copytree(finished, root / "copy" / label)
    damage(root / "copy" / "a" / "results.json", "truncated")
    before = tree_hash(root / "copy" / "a")
    out = run_sweep(two_run_sweep(), root, log=quiet)
    assert out["skipped"] == ["copy/b"] and list(out["failed"]) == ["copy/a"]
    # The sweep records the failure beside the run (failed.json, for other workers) and
    # touches nothing else of it.
    failed = root / "copy" / "a" / FAILED
    assert "damaged" in failed.read_text()
    failed.unlink()
    assert "damaged" in out["failed"]["copy/a"]
    assert str(root / "copy" / "a" / "results.json") in out["failed"]["copy/a"]
    out = run_sweep(two_run_sweep(), root, only="b", log=quiet)
    assert out["skipped"] == ["copy/b"] and not out["failed"]
    with pytest.warns(UserWarning, match="results.json"):
        write_report(root, log=quiet)
    assert "copy/a" not in (root / "results.csv").read_text()
    assert tree_hash(root / "copy" / "a") == before
