"""The models axis (seeds x learning rates), the learned gate and train-to-criterion (until)."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from configs.copy import get_config
from pe_jax.runfiles import SCHEMA_VERSION
from pe_jax.training import (
    make_mesh,
    make_optimizer,
    make_train_program,
    set_field,
    settings_from_config,
    train_and_evaluate,
)
from pe_jax.training._step import model_keys

# Smoke copy at a rate that learns within tens of steps; the gate runs every 5 steps. At
# until=0.3 seed 1 meets the criterion first, seed 0 later, both before the 40-step cap.
UNTIL = (
    "smoke,train.learning_rate=0.003,train.steps=40,train.gate_every=5,"
    "train.checkpoint_every=5,train.log_every=5,train.until=0.3"
)


def config(arg: str, **fields):
    c = get_config(arg)
    for key, value in fields.items():
        set_field(c, key, value)
    return c


def quiet(_):
    pass


def checkpoint(workdir, step=None) -> dict:
    manager = ocp.CheckpointManager((workdir / "checkpoints").absolute())
    step = manager.latest_step() if step is None else step
    return manager.restore(step, args=ocp.args.StandardRestore())


def checkpoint_steps(workdir) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def records(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def until_runs(tmp_path_factory):
    """Seeds (0, 1) together with until, and each seed alone with the same until."""
    root = tmp_path_factory.mktemp("until")
    runs = {}
    for name, seeds in (("both", (0, 1)), ("seed0", (0,)), ("seed1", (1,))):
        results = train_and_evaluate(config(UNTIL, seeds=seeds), root / name, log=quiet)
        runs[name] = (root / name, results)
    return runs


def test_until_stops_each_seed_on_its_own_and_the_run_when_all_are_done(until_runs):
    workdir, results = until_runs["both"]
    first, later = sorted(results["steps_trained"])
    assert first < later < 40, results["steps_trained"]  # one stopped, the other went on
    stopped = results["steps_trained"].index(first)
    assert results["until"] == 0.3
    assert all(x >= 0.3 for x in results["gate"]["exact_match"])
    # The run stopped at the step the last model was done: no step logged or saved after it.
    steps = [r["step"] for r in records(workdir) if "event" not in r]
    assert steps == list(range(1, later + 1))
    assert checkpoint_steps(workdir)[-1] == later
    gates = [r for r in records(workdir) if r.get("event") == "gate"]
    assert [g["step"] for g in gates] == list(range(5, later + 1, 5))
    first_done = next(g for g in gates if any(g["gate"]["done"]))
    assert first_done["step"] == first and first_done["gate"]["done"][1 - stopped] is False
    # Between the two last checkpoints the stopped model's params and optimizer state stayed,
    # the other's changed.
    a, b = (checkpoint(workdir, step) for step in checkpoint_steps(workdir)[-2:])
    for part in ("params", "opt_state"):
        for x, y in zip(leaves(a[part]), leaves(b[part]), strict=True):
            np.testing.assert_array_equal(x[stopped], y[stopped])
    assert any(
        not np.allclose(x[1 - stopped], y[1 - stopped])
        for x, y in zip(leaves(a["params"]), leaves(b["params"]), strict=True)
    )


def test_each_seed_equals_its_separate_run_with_the_same_until(until_runs):
    workdir, results = until_runs["both"]
    both = leaves(checkpoint(workdir)["params"])
    for index, name in enumerate(("seed0", "seed1")):
        single_dir, single = until_runs[name]
        assert single["steps_trained"] == [results["steps_trained"][index]]
        for x, y in zip(both, leaves(checkpoint(single_dir)["params"]), strict=True):
            np.testing.assert_allclose(x[index], y[0], rtol=2e-4, atol=2e-5)


def test_resume_with_some_seeds_done_is_bit_identical(until_runs, tmp_path):
    workdir, results = until_runs["both"]
    resumed = tmp_path / "resumed"
    shutil.copytree(workdir, resumed)
    last, before = checkpoint_steps(workdir)[-1], checkpoint_steps(workdir)[-2]
    shutil.rmtree(resumed / "checkpoints" / str(last))
    (resumed / "results.json").unlink()
    done = np.asarray(checkpoint(resumed, before)["control"]["done"])
    assert done.any() and not done.all()  # resumed with one seed done, one still training
    again = train_and_evaluate(config(UNTIL, seeds=(0, 1)), resumed, log=quiet)
    assert again["steps_run_this_session"] == last - before
    for key in ("steps_trained", "gate", "learned", "metrics"):
        assert again[key] == results[key], key
    for x, y in zip(leaves(checkpoint(resumed)), leaves(checkpoint(workdir)), strict=True):
        np.testing.assert_array_equal(x, y)
    # metrics.jsonl, gate records included, as if the run had not been interrupted
    assert records(resumed) == records(workdir)


def test_a_model_that_cannot_learn_is_marked_not_learned(tmp_path):
    c = config(
        "smoke",
        seeds=(1,),
        **{"train.learning_rates": (0.0, 0.003), "train.gate_threshold": 0.3},
    )
    results = train_and_evaluate(c, tmp_path, log=quiet)
    assert results["models"] == [
        {"seed": 1, "learning_rate": 0.0},
        {"seed": 1, "learning_rate": 0.003},
    ]
    assert results["learned"] == [False, True]
    gate = results["gate"]
    assert gate["metric"] == "exact_match" and gate["threshold"] == 0.3
    assert gate["lengths"] == [2, 3, 4]  # the 3 longest training lengths of 1..4
    assert gate["exact_match"][0] < 0.3 <= gate["exact_match"][1]
    assert results["steps_trained"] == [20, 20] and results["until"] is None
    assert np.asarray(results["metrics"]["exact_match"]).shape == (2, len(results["lengths"]))
    assert results["num_compilations"]["gate"] == 1
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION and on_disk["until"] is None


def _train(settings, mesh, steps):
    keys = model_keys(settings)
    with jax.set_mesh(mesh):
        program = make_train_program(settings, mesh)
        state = program.init(keys)
        for step in range(steps):
            state, _ = program.step(state, keys, jnp.int32(step))
    return program, state, keys


def test_learning_rate_axis_equals_separate_runs_in_one_compiled_program():
    arg = "smoke,train.schedule=cosine,train.warmup_steps=2,train.steps=6"
    rates = (1e-3, 3e-3, 1e-2)
    settings = settings_from_config(config(arg, seeds=(0, 1), **{"train.learning_rates": rates}))
    assert settings.models == tuple((seed, rate) for seed in (0, 1) for rate in rates)
    mesh = make_mesh()
    program, state, keys = _train(settings, mesh, 6)
    assert program.traces[0] == 1  # six models, three rates: one compiled step
    np.testing.assert_allclose(
        state["control"]["learning_rate"], [r for _ in (0, 1) for r in rates]
    )
    together = leaves(state["params"])
    assert any(not np.allclose(x[0], x[1]) for x in together)  # the rate matters
    for m, (seed, rate) in enumerate(settings.models):
        single = settings_from_config(
            config(arg, seeds=(seed,), **{"train.learning_rates": (rate,)})
        )
        _, alone, _ = _train(single, mesh, 6)
        for x, y in zip(together, leaves(alone["params"]), strict=True):
            np.testing.assert_allclose(x[m], y[0], rtol=2e-4, atol=2e-5)
    # Other rates are other values in the state, not another program.
    rates_now = state["control"]["learning_rate"]
    state["control"]["learning_rate"] = jax.device_put(rates_now * 2, rates_now.sharding)
    with jax.set_mesh(mesh):
        program.step(state, keys, jnp.int32(6))
    assert program.traces[0] == 1


@pytest.mark.parametrize("optimizer, weight_decay", [("adam", 0.0), ("adamw", 0.1)])
@pytest.mark.parametrize("schedule, warmup", [("cosine", 3), ("constant", 2), ("constant", 0)])
def test_unit_rate_update_scaled_by_the_rate_is_the_optimizer_of_that_rate(
    optimizer, weight_decay, schedule, warmup
):
    rate = 3e-3
    options = dict(
        total_steps=10,
        warmup_steps=warmup,
        schedule=schedule,
        optimizer=optimizer,
        weight_decay=weight_decay,
    )
    tx, unit = (
        make_optimizer(learning_rate=rate, **options),
        make_optimizer(learning_rate=1.0, **options),
    )
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)}
    state, unit_state = tx.init(params), unit.init(params)
    for step in range(6):
        grads = {"w": jnp.sin(params["w"] * (step + 1))}
        updates, state = tx.update(grads, state, params)
        scaled, unit_state = unit.update(grads, unit_state, params)
        np.testing.assert_allclose(scaled["w"] * rate, updates["w"], rtol=1e-5, atol=1e-12)
        params = optax.apply_updates(params, updates)


def test_rates_default_to_the_learning_rate_and_until_zero_is_off():
    s = settings_from_config(config("smoke", **{"train.learning_rates": ()}))
    assert s.rates == (1e-3,) and s.models == ((0, 1e-3),) and s.until is None
    s = settings_from_config(config("smoke,train.learning_rates=1e-3;3e-3,train.until=0"))
    assert s.rates == (1e-3, 3e-3) and s.until is None
    s = settings_from_config(config("smoke,train.until=0.9,train.gate_lengths=10"))
    assert s.until == 0.9 and s.gate_lengths == (1, 2, 3, 4)  # clipped to the training range


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"train.until": 1.5}, "config.train.until"),
        ({"train.until": -0.5}, "config.train.until"),
        ({"train.learning_rates": (1e-3, -1e-3)}, r"config.train.learning_rates\[1\]"),
        ({"train.learning_rates": (1e-3, 1e-3)}, "config.train.learning_rates"),
        ({"train.learning_rate": -1.0}, "config.train.learning_rate"),
        ({"train.gate_threshold": 0.0}, "config.train.gate_threshold"),
        ({"train.gate_threshold": 1.01}, "config.train.gate_threshold"),
        ({"train.gate_lengths": 0}, "config.train.gate_lengths"),
        ({"train.gate_every": 0}, "config.train.gate_every"),
        ({"train.gate_samples": 0}, "config.train.gate_samples"),
    ],
)
def test_bad_values_fail_before_training_naming_the_field(tmp_path, fields, field):
    with pytest.raises(ValueError, match=field):
        train_and_evaluate(config("smoke", **fields), tmp_path, log=quiet)
    assert not (tmp_path / "checkpoints").exists()


def test_the_typed_setter_names_the_field():
    with pytest.raises(ValueError, match="config.train.until"):
        config("smoke,train.until=high")
    with pytest.raises(ValueError, match="config.train.learning_rates"):
        config("smoke", **{"train.learning_rates": 0.1})
