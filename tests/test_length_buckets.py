"""Per-batch training lengths: one length per step, one program per bucket, padding-free."""

import dataclasses

import jax
import numpy as np
import pytest

from configs.copy import get_config
from pe_jax.training import make_mesh, make_train_program, seed_keys, settings_from_config
from pe_jax.training._lengths import CHUNK, LengthSchedule, step_lengths

STEPS = 6


def settings(arg="", **fields):
    """Copy, smoke model, train lengths 1..16: widths 2..32 in the encoder layout."""
    c = get_config("smoke" + ("," + arg if arg else ""))
    c.train.max_length, c.eval.lengths, c.seeds = 16, (1, 2), (0, 1)
    c.train.bucket_multiple = 16  # fixed here ("auto" would follow the steps): widths 16, 32
    for key, value in fields.items():
        section, leaf = key.split(".")
        c[section][leaf] = value
    return settings_from_config(c)


def host(tree):
    return jax.tree.map(np.asarray, tree)


def run(s, steps=STEPS):
    """(program, [state after each step], [metrics of each step]) of `steps` steps of `s`."""
    mesh = make_mesh()
    with jax.set_mesh(mesh):
        program = make_train_program(s, mesh)
        keys = seed_keys(s.seeds)
        state, states, metrics = program.init(keys), [], []
        for step in range(steps):
            state, m = program.step(state, keys, np.int32(step))
            states.append(host(state))
            metrics.append(host(m))
    return program, states, metrics


@pytest.fixture(scope="module")
def bucketed():
    s = settings()
    return s, *run(s)


def test_defaults_follow_the_protocol_and_bad_values_name_the_field():
    assert settings().length_sampling == "per_batch"  # the official encoder trainer
    assert settings("protocol=decoder").length_sampling == "per_example"
    assert get_config("smoke").train.bucket_multiple == 0  # "auto" by default
    assert settings(**{"train.bucket_multiple": 0}).bucket_multiple == 32  # a short run
    with pytest.raises(ValueError, match="config.train.length_sampling"):
        settings(**{"train.length_sampling": "per_token"})
    with pytest.raises(ValueError, match="config.train.bucket_multiple"):
        settings(**{"train.bucket_multiple": -1})


def test_step_lengths_depend_on_the_step_alone_and_are_uniform():
    lengths = step_lengths(np.arange(4000), min_length=3, max_length=9)
    assert set(lengths.tolist()) == set(range(3, 10))
    assert np.bincount(lengths)[3:].min() > 4000 / 7 * 0.8  # roughly uniform
    # The same step gets the same length whatever else is drawn with it, across chunks too.
    steps = np.array([5, CHUNK - 1, CHUNK, 3 * CHUNK + 7])
    alone = [step_lengths([t], min_length=3, max_length=9)[0] for t in steps]
    np.testing.assert_array_equal(step_lengths(steps, min_length=3, max_length=9), alone)
    task = settings().task
    schedule = LengthSchedule(task, "encoder", min_length=3, max_length=9, multiple=16, cap=18)
    assert [schedule.length(t) for t in steps] == alone
    assert {schedule.width(t) for t in range(200)} == {16, 18}  # 2T rounded to 16, capped


def test_every_row_of_a_batch_has_the_step_length(bucketed):
    s, program, _, _ = bucketed
    keys = seed_keys(s.seeds)
    seen = set()
    for step in range(40):
        batches = [program.batch(key, step) for key in keys]
        length = program.step.schedule.length(step)
        width = program.step.schedule.width(step)
        for batch in batches:  # every seed: the same length, its own examples
            np.testing.assert_array_equal(batch.lengths, length)
            assert batch.inputs.shape == (s.batch_size, width)
            assert bool(batch.valid[:, s.task.width(length, "encoder") - 1].all())
        assert not np.array_equal(batches[0].inputs, batches[1].inputs)
        assert width == min(-(-2 * length // 16) * 16, s.train_width)
        seen.add(length)
    assert len(seen) > 8  # the steps really draw many lengths


def test_one_program_per_bucket_used(bucketed):
    _, program, _, _ = bucketed
    used = {program.step.schedule.width(t) for t in range(STEPS)}
    assert used == {16, 32}  # the first steps use both buckets of train width 32
    assert program.traces[0] == len(program.step.programs) == len(used)


def test_bucketed_steps_equal_steps_at_the_full_training_width(bucketed):
    s, program, states, metrics = bucketed
    # A multiple beyond the training width: every step runs at the training width (32).
    full, full_states, full_metrics = run(dataclasses.replace(s, bucket_multiple=64))
    assert full.traces[0] == 1 and set(full.step.programs) == {32}
    assert program.step.schedule.width(0) == 16  # the first step really ran narrower
    for a, b in zip(metrics, full_metrics, strict=True):
        for name in ("loss", "grad_norm", "token_accuracy"):
            np.testing.assert_allclose(a[name], b[name], rtol=2e-5, atol=1e-6)
    # Adam's first moment after step 0 is 0.1 x the gradient: the gradients agree.
    for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(full_states[0]), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7)
    for a, b in zip(jax.tree.leaves(states[-1]), jax.tree.leaves(full_states[-1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_per_example_draws_a_length_per_row_and_one_program():
    s = settings(**{"train.length_sampling": "per_example"})
    program, _, _ = run(s, steps=2)
    assert program.traces[0] == 1
    key = seed_keys(s.seeds)[0]
    batch = program.batch(key, 3)
    assert batch.inputs.shape == (s.batch_size, s.train_width)
    # The draw as it always was: lengths from fold_in(step key, 1), examples from fold_in(.., 0).
    step_key = jax.random.fold_in(key, 3)
    lengths = jax.random.randint(jax.random.fold_in(step_key, 1), (s.batch_size,), 1, 17)
    assert len(set(np.asarray(lengths).tolist())) > 1
    expected = s.task.sample(
        jax.random.fold_in(step_key, 0),
        batch_size=s.batch_size,
        length=lengths,
        layout="encoder",
        width=s.train_width,
    )
    for a, b in zip(batch, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_restart_from_a_saved_state_is_bit_identical(bucketed):
    s, _, states, metrics = bucketed
    mesh = make_mesh()
    with jax.set_mesh(mesh):
        program = make_train_program(s, mesh)  # a new process would build a new program
        keys = seed_keys(s.seeds)
        shardings = jax.tree.map(lambda x: x.sharding, program.abstract_state)
        state = jax.device_put(states[2], shardings)  # as restored from the step-3 checkpoint
        for step in range(3, STEPS):
            state, m = program.step(state, keys, np.int32(step))
            for name, value in host(m).items():
                np.testing.assert_array_equal(value, metrics[step][name])
    assert {program.step.schedule.width(t) for t in range(3, STEPS)} == {16, 32}
    for a, b in zip(jax.tree.leaves(host(state)), jax.tree.leaves(states[-1]), strict=True):
        np.testing.assert_array_equal(a, b)


def _choose(model_steps, **kw):
    from pe_jax.tasks import get_task
    from pe_jax.training._lengths import choose_bucket_multiple

    task = get_task("reverse")  # encoder layout: width 2 L, lengths 1..40 -> widths 2..80
    return choose_bucket_multiple(
        task, "encoder", min_length=1, max_length=40, cap=80, model_steps=model_steps, **kw
    )


def test_auto_buckets_weigh_compilations_against_planned_steps():
    from pe_jax.training._lengths import BUCKET_MULTIPLES

    picks = [_choose(n) for n in (1, 100, 1_000, 10_000, 100_000, 10**7)]
    assert picks[0] == max(BUCKET_MULTIPLES)  # a short run: fewest programs
    assert picks[-1] == 2  # a long run: exact widths (1 and 2 tie on even widths: the coarser)
    assert picks == sorted(picks, reverse=True)  # more planned steps, finer buckets
    # Costlier compilation moves the choice towards coarser buckets.
    assert _choose(10_000, compile_model_steps=1e6) == max(BUCKET_MULTIPLES)


def test_auto_bucket_multiple_resolves_from_steps_and_models():
    from pe_jax.training._lengths import choose_bucket_multiple

    s = settings(**{"train.length_sampling": "per_batch", "train.bucket_multiple": 0})
    expected = choose_bucket_multiple(
        s.task, s.protocol, min_length=s.min_length, max_length=s.max_length,
        cap=s.train_width, model_steps=s.steps * len(s.models),
    )  # fmt: skip
    assert s.bucket_multiple == expected >= 1
    per_example = settings(**{"train.length_sampling": "per_example", "train.bucket_multiple": 0})
    assert per_example.bucket_multiple == 16  # one program whatever the multiple
    with pytest.raises(ValueError, match="config.train.bucket_multiple"):
        settings(**{"train.bucket_multiple": -1})
