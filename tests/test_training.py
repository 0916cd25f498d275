"""The experiment runner: seeds in one program, resume, refusal, bad input, NaN, compilations."""

import json
import os
import signal
import subprocess
import sys
import time
import types

import jax
import numpy as np
import pytest

from configs.copy import get_config
from pe_jax.training import NonFiniteError, set_field, train_and_evaluate
from pe_jax.training._mesh import check_divisible


def tiny(arg="", **overrides):
    config = get_config("smoke" + ("," + arg if arg else ""))
    for key, value in overrides.items():
        set_field(config, key, value)  # the one typed setter every config route uses
    return config


def quiet(_):
    pass


@pytest.fixture(scope="module")
def two_seed_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("two_seeds")
    config = tiny(seeds=(0, 1))
    lines = []
    results = train_and_evaluate(config, workdir, log=lines.append)
    return workdir, results, lines


def _final_params(workdir):
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager((workdir / "checkpoints").absolute())
    step = manager.latest_step()
    restored = manager.restore(step, args=ocp.args.StandardRestore())
    return jax.tree.leaves(restored["params"])


def test_results_file_has_what_every_run_records(two_seed_run):
    workdir, results, _ = two_seed_run
    on_disk = json.loads((workdir / "results.json").read_text())
    assert on_disk["seeds"] == [0, 1]
    acc = np.asarray(on_disk["metrics"]["token_accuracy"])
    assert acc.shape == (2, len(on_disk["lengths"]))
    assert ((acc >= 0) & (acc <= 1)).all()
    for key in ("num_params", "train_time_s", "time_per_step_s", "jax_version", "backend"):
        assert key in on_disk
    # CPU time of the steps after the first (compiling) one, which is timed apart.
    assert 0 < on_disk["cpu_seconds_per_step"] < on_disk["compile_seconds"]
    assert on_disk["num_compilations"]["train_step"] == 1  # a whole curriculum, one program
    # lengths 1, 2, 4 share the width-8 bucket; 8 needs 16: two model programs + the sampler
    assert on_disk["num_compilations"]["evaluation"] == 3
    ind = on_disk["summary"]["token_accuracy"]["in_distribution"]
    train_max = on_disk["train_max_length"]
    lengths = np.asarray(on_disk["lengths"])
    np.testing.assert_allclose(ind, acc[:, lengths <= train_max].mean(-1))
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "event" not in r] == list(range(1, 21))
    assert records[-1]["event"] == "eval"


def test_log_lines_lead_with_exact_match_and_rates_leave_out_compiling(two_seed_run):
    _, results, lines = two_seed_run
    assert lines[-1].startswith("done: exact match in-distribution")
    rates = [float(line.split("steps/s")[0].split()[-1]) for line in lines if "steps/s" in line]
    # Compiling is left out of the rate: no line is slowed by the first step's compile.
    step_time = results["cpu_seconds_per_step"]
    assert len(rates) == 2 and all(rate > 0.1 / step_time for rate in rates)


def test_vmapped_seed_equals_single_run(two_seed_run, tmp_path):
    workdir, _, _ = two_seed_run
    train_and_evaluate(tiny(seeds=(1,)), tmp_path, log=quiet)
    both = _final_params(workdir)
    single = _final_params(tmp_path)
    for a, b in zip(both, single, strict=True):
        np.testing.assert_allclose(a[1], b[0], rtol=2e-4, atol=2e-5)
    # and the two seeds of the vmapped run are different models
    assert any(not np.allclose(a[0], a[1]) for a in both)


def test_seed_loops_train_the_same_models(two_seed_run, tmp_path):
    # The default on CPU is seed_loop="auto" -> "map"; "vmap" batches the seeds instead.
    workdir, _, _ = two_seed_run
    train_and_evaluate(tiny(seeds=(0, 1), **{"train.seed_loop": "vmap"}), tmp_path, log=quiet)
    for a, b in zip(_final_params(workdir), _final_params(tmp_path), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_seed_loops_initialise_the_same_models_bit_for_bit():
    # The initialiser loops over models as the step does (lax.map on CPU: half the compile
    # time of a vmap); the initial values must not depend on it.
    from pe_jax.benchmark import ReferenceModel
    from pe_jax.training import make_mesh, make_train_program, model_keys

    reference = ReferenceModel(num_layers=1, batch_size=4, max_length=4)
    states = []
    for loop in ("vmap", "map"):
        s = reference.settings("rope", num_seeds=3, seed_loop=loop)
        states.append(jax.device_get(make_train_program(s, make_mesh()).init(model_keys(s))))
    for a, b in zip(*(jax.tree.leaves(x) for x in states), strict=True):
        np.testing.assert_array_equal(a, b)
    first = jax.tree.leaves(states[1]["params"])[0]
    assert not np.array_equal(first[0], first[1])  # and the models differ from each other


def test_finished_run_is_not_retrained_and_other_config_is_refused(two_seed_run):
    workdir, results, _ = two_seed_run
    mtime = (workdir / "results.json").stat().st_mtime_ns
    again = train_and_evaluate(tiny(seeds=(0, 1)), workdir, log=quiet)
    assert again == json.loads((workdir / "results.json").read_text())
    assert (workdir / "results.json").stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="different config"):
        train_and_evaluate(tiny(seeds=(0, 1), **{"train.steps": 30}), workdir, log=quiet)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"task": "nope"}, "config.task"),
        ({"protocol": "sideways"}, "config.protocol"),
        ({"model.encoding": "nope"}, "encoding"),
        ({"train.max_length": 0}, "config.train.max_length"),
        ({"eval.lengths": (1, 400), "model.encoding": "learned"}, "max_length"),
        ({"seeds": (1, 1)}, "config.seeds"),
        ({"train.seed_loop": "pmap"}, "config.train.seed_loop"),
    ],
)
def test_bad_config_fails_before_training(tmp_path, overrides, field):
    with pytest.raises(ValueError, match=field):
        train_and_evaluate(tiny(**overrides), tmp_path, log=quiet)
    assert not (tmp_path / "checkpoints").exists()


def test_batch_or_seeds_not_divisible_by_mesh():
    mesh = types.SimpleNamespace(shape={"data": 4, "seeds": 2})
    with pytest.raises(ValueError, match="batch_size"):
        check_divisible(mesh, batch_size=6, num_seeds=2)
    with pytest.raises(ValueError, match="seeds"):
        check_divisible(mesh, batch_size=8, num_seeds=3)
    check_divisible(mesh, batch_size=8, num_seeds=4)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    # A learning rate this large overflows the parameters within a few steps.
    config = tiny(**{"train.learning_rate": 1e30, "train.clip_norm": None})
    config.train.checkpoint_every = 1
    config.train.log_every = 1
    with pytest.raises(NonFiniteError, match="non-finite"):
        train_and_evaluate(config, tmp_path, log=quiet)
    assert not (tmp_path / "results.json").exists()
    saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert saved, "the good steps before the overflow were checkpointed"
    params = _final_params(tmp_path)
    assert all(np.isfinite(p).all() for p in params)


def _train_cmd(workdir, steps, max_length):
    return [
        sys.executable,
        "-m",
        "experiments.train",
        "--config=configs/copy.py:smoke",
        f"--config.train.steps={steps}",
        f"--config.train.max_length={max_length}",
        "--config.train.checkpoint_every=5",
        "--config.train.log_every=5",
        "--config.train.bucket_multiple=16",  # fixed: "auto" would pick one bucket for 1..16
        f"--workdir={workdir}",
    ]


# Train lengths 1..4 fit one bucket (width 8); 1..16 use two (widths 16 and 32), each step at
# the bucket of its own length, so the resumed run must pick the same lengths and programs.
@pytest.mark.parametrize("max_length", [4, 16], ids=["one_bucket", "length_buckets"])
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, max_length):
    root = os.path.dirname(os.path.dirname(__file__))
    steps = 120
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    cmd = _train_cmd(killed, steps, max_length)
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    ckpt = killed / "checkpoints"
    while time.time() < deadline and proc.poll() is None:
        done = [p for p in ckpt.iterdir() if p.name.isdigit()] if ckpt.exists() else []
        if any(int(p.name) >= 10 for p in done):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; raise steps"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists()
    subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    fields = {"train.steps": steps, "train.checkpoint_every": 5, "train.log_every": 5}
    fields["train.bucket_multiple"] = 16
    config = tiny(**fields, **{"train.max_length": max_length})
    train_and_evaluate(config, clean, log=quiet)
    a = json.loads((killed / "results.json").read_text())
    b = json.loads((clean / "results.json").read_text())
    assert a["steps_run_this_session"] < steps  # it really resumed
    assert b["num_compilations"]["train_step"] == (1 if max_length == 4 else 2)
    assert a["metrics"] == b["metrics"]  # bit-identical
    for x, y in zip(_final_params(killed), _final_params(clean), strict=True):
        np.testing.assert_array_equal(x, y)
    lines = (killed / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(line)["step"] for line in lines if "event" not in line]
    assert logged == list(range(1, steps + 1))  # no duplicated or lost records after resume


def test_abstract_state_is_the_state_of_a_real_model_built_once(monkeypatch):
    from pe_jax.nn import Transformer
    from pe_jax.training import abstract_state, make_mesh, make_train_program, seed_keys
    from pe_jax.training._settings import settings_from_config

    settings = settings_from_config(tiny(seeds=(0, 1)))
    mesh = make_mesh()
    builds = []
    original = Transformer.__init__

    def counting(self, *args, **kwargs):
        builds.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Transformer, "__init__", counting)
    with jax.set_mesh(mesh):
        program = make_train_program(settings, mesh)
        state = program.init(seed_keys(settings.seeds))
        program.step(state, seed_keys(settings.seeds), np.int32(0))
    assert len(builds) == 1  # the abstract state, init and the step share one build
    graphdef, abstract = abstract_state(settings, mesh)
    assert len(builds) == 2  # one more for the standalone abstract state, no program

    def shape_of(tree):
        return jax.tree.map(lambda x: (x.shape, x.dtype), tree)

    assert shape_of(abstract) == shape_of(state) == shape_of(program.abstract_state)
    assert jax.tree.leaves(abstract["params"])[0].shape[0] == 2  # the seed axis
    assert graphdef == program.graphdef
