"""Evaluation: bucketed == unpadded, and teacher-forced exact match == greedy KV-cache decoding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.copy import get_config
from pe_jax.evaluation import evaluate
from pe_jax.nn import generate
from pe_jax.tasks import get_task
from pe_jax.training import load_run, train_and_evaluate


def _trained(tmp_path, encoding):
    config = get_config(f"protocol=decoder,smoke,model.encoding={encoding}")
    config.train.steps = 60
    config.train.checkpoint_every = 60
    config.train.log_every = 60
    train_and_evaluate(config, tmp_path, log=lambda _: None)
    return load_run(tmp_path)


def test_bucketed_evaluation_equals_unpadded(tmp_path):
    run = _trained(tmp_path, "alibi")
    kwargs = dict(
        task=run.settings.task, layout="decoder", lengths=[1, 3, 5, 6], samples=16, seed=3
    )
    padded = evaluate(run.state, run.graphdef, bucketed=True, **kwargs)
    exact = evaluate(run.state, run.graphdef, bucketed=False, **kwargs)
    assert padded["widths"] != exact["widths"]  # the two really ran at different widths
    for name in ("token_accuracy", "exact_match"):
        np.testing.assert_allclose(padded["metrics"][name], exact["metrics"][name], atol=1e-6)
    np.testing.assert_allclose(padded["metrics"]["loss"], exact["metrics"]["loss"], rtol=1e-4)


def test_teacher_forced_exact_match_equals_greedy_decoding(tmp_path):
    run = _trained(tmp_path, "rope")
    model = run.model(0)
    task = get_task("copy", num_symbols=2)
    length, samples = 4, 32
    batch = task.sample(jax.random.key(7), batch_size=samples, length=length, layout="decoder")
    logits, _ = model(batch.inputs, mask=batch.valid)
    mask = np.asarray(batch.loss_mask)
    correct = np.asarray(jnp.argmax(logits, -1) == batch.targets) | ~mask
    teacher_forced = correct.all(-1)
    # Greedy decoding from the prompt and separator (the first length + 1 inputs).
    prompt = batch.inputs[:, : length + 1]
    answer = np.asarray(generate(model, prompt, length + 1))  # the answer then END
    targets = np.asarray(batch.targets)[:, length : 2 * length + 1]
    greedy = (answer == targets).all(-1)
    np.testing.assert_array_equal(teacher_forced, greedy)
    assert 0 < teacher_forced.sum()  # the model learned something, so the check has teeth


def _initial_state(config):
    """(settings, training program, its initial state) of a config: an untrained model."""
    from pe_jax.training import make_mesh, make_train_program, seed_keys, settings_from_config

    settings = settings_from_config(config)
    mesh = make_mesh()
    with jax.set_mesh(mesh):
        program = make_train_program(settings, mesh)
        return settings, program, program.init(seed_keys(settings.seeds))


def test_on_program_sees_each_bucket_once_and_wraps_every_call():
    settings, program, state = _initial_state(get_config("smoke"))
    built, calls = [], []

    def on_program(width, compiled):
        built.append(width)

        def counted(*args):
            calls.append(width)
            return compiled(*args)

        return counted

    lengths = [1, 2, 3, 9]
    out = evaluate(
        state,
        program.graphdef,
        task=settings.task,
        layout=settings.protocol,
        lengths=lengths,
        samples=4,
        on_program=on_program,
    )
    assert built == sorted(set(out["widths"])) and len(built) >= 2
    assert calls == out["widths"] and len(calls) == len(lengths)
    assert out["num_compilations"] == len(built) + 1  # the buckets and the sampler
    assert out["metrics"]["loss"].shape == (len(settings.seeds), len(lengths))
    # Every example's score is kept, and its mean is the per-length metric.
    for name in ("exact_match", "token_accuracy"):
        per_example = out["examples"][name]
        assert per_example.shape == (len(settings.seeds), len(lengths), 4)
        np.testing.assert_allclose(per_example.mean(-1), out["metrics"][name], atol=1e-6)


def test_baselines_at_the_evaluated_lengths_match_the_task_definition():
    from pe_jax.evaluation import baselines

    task = get_task("copy", num_symbols=2)
    out = baselines(task, layout="encoder", lengths=[1, 3], samples=64)
    assert out["lengths"] == [1, 3] and out["answer_tokens"] == 2
    # Uniform over 2 answer tokens: token accuracy 1/2, exact match (1/2)^T.
    np.testing.assert_allclose(out["uniform"]["token_accuracy"], [0.5, 0.5])
    np.testing.assert_allclose(out["uniform"]["exact_match"], [0.5, 0.125])


def test_evaluation_in_sub_batches_equals_one_batch():
    from configs.addition import get_config as addition_config

    # Binary addition: answers end with END, so sub-batches hold different numbers of tokens.
    settings, program, state = _initial_state(addition_config("smoke"))
    kwargs = dict(task=settings.task, layout="encoder", lengths=[2, 3, 9], samples=16, seed=2)
    whole = evaluate(state, program.graphdef, **kwargs)
    parts = evaluate(state, program.graphdef, batch_size=4, **kwargs)
    assert whole["num_compilations"] == parts["num_compilations"]
    for name in ("token_accuracy", "exact_match", "loss"):
        np.testing.assert_allclose(parts["metrics"][name], whole["metrics"][name], rtol=1e-5)
    assert 0 < whole["metrics"]["token_accuracy"].min()  # something to compare
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(state, program.graphdef, batch_size=5, **kwargs)
    with pytest.raises(ValueError, match="config.eval.batch_size"):
        _initial_state(get_config("smoke,eval.samples=8,eval.batch_size=3"))


def test_bucket_policy_powers_of_two_then_steps_of_64():
    from pe_jax.tasks import bucket_width

    assert [bucket_width(w) for w in (1, 8, 9, 100, 256)] == [8, 8, 16, 128, 256]
    assert [bucket_width(w) for w in (257, 320, 321, 514, 1000, 1030)] == [
        320,
        320,
        384,
        576,
        1024,
        1088,
    ]
    # The encoder protocol's 1..500 sweep: 6 power-of-two buckets and 12 steps of 64.
    widths = {bucket_width(2 * t) for t in range(1, 501)}
    assert sorted(widths) == [8, 16, 32, 64, 128, 256, *range(320, 1025, 64)]


def test_training_widths_are_untouched_by_the_evaluation_levers():
    """Training's per-batch widths are multiples of train.bucket_multiple (its own rule, not
    `bucket_width`); the encoder protocol's training widths (lengths 1..40: <= 80 slots) are
    below both evaluation levers: the power-of-two range of `bucket_width` and the key length
    from which the CPU attention blocks a gradient-free pass. Training programs and values
    are therefore those of before."""
    from configs.sweeps.deletang_ruoss import get_config as protocol
    from pe_jax.nn import _cpu_attention as ca
    from pe_jax.tasks import bucket_width

    overrides = protocol("published_lengths").overrides
    task = get_task("reverse")
    width = task.width(overrides.train.max_length, "encoder")
    assert width == 80 and bucket_width(width) == 128
    assert width < ca.BLOCK_MIN_KEYS
    assert ca.block_for(128, 8, width, width) == (128, width)


def test_bucketed_evaluation_above_256_equals_unpadded():
    """Widths above 256 run in steps of 64 (300 -> 320, 330 -> 384): the padded evaluation
    equals the unpadded one, metrics and every example's score."""
    settings, program, state = _initial_state(get_config("protocol=encoder,smoke"))
    lengths = [150, 165]  # encoder widths 300 and 330
    kwargs = dict(task=settings.task, layout="encoder", lengths=lengths, samples=4, seed=2)
    padded = evaluate(state, program.graphdef, bucketed=True, **kwargs)
    exact = evaluate(state, program.graphdef, bucketed=False, **kwargs)
    assert padded["widths"] == [320, 384] and exact["widths"] == [300, 330]
    for name in ("token_accuracy", "exact_match"):
        np.testing.assert_allclose(padded["metrics"][name], exact["metrics"][name], atol=1e-6)
        np.testing.assert_allclose(padded["examples"][name], exact["examples"][name], atol=1e-6)
    np.testing.assert_allclose(padded["metrics"]["loss"], exact["metrics"]["loss"], rtol=1e-4)


class _Compilations:
    """Counts XLA backend compilations while active."""

    def __init__(self):
        self.count = 0

    def __call__(self, event, duration, **kwargs):
        del duration, kwargs
        self.count += event == "/jax/core/compile/backend_compile_duration"

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)


def test_models_of_a_run_compile_once_per_bucket_and_equal_each_alone():
    """S models are evaluated by one program per bucket (S does not change the number of
    compilations), looped (map) or batched (vmap) with the same metrics, and each model's
    metrics equal its evaluation alone."""
    config = get_config("protocol=encoder,smoke")
    config.seeds = (0, 1, 2)
    settings, program, state = _initial_state(config)
    kwargs = dict(task=settings.task, layout="encoder", lengths=[2, 5, 9], samples=4, seed=1)
    evaluate(state, program.graphdef, **kwargs)  # warms the eager helpers (keys, slices)
    runs = {}
    for loop in ("map", "vmap"):
        with _Compilations() as compilations:
            runs[loop] = evaluate(state, program.graphdef, model_loop=loop, **kwargs)
        buckets = len(set(runs[loop]["widths"]))
        assert buckets >= 2
        assert compilations.count == buckets + 1  # the bucket programs and the sampler
    assert runs["map"]["metrics"]["loss"].shape == (3, 3)
    for name in ("token_accuracy", "exact_match", "loss"):
        np.testing.assert_allclose(
            runs["map"]["metrics"][name], runs["vmap"]["metrics"][name], rtol=1e-5, atol=1e-6
        )
    alone = evaluate(jax.tree.map(lambda x: x[1:2], state), program.graphdef, **kwargs)
    np.testing.assert_allclose(
        alone["metrics"]["loss"][0], runs["map"]["metrics"]["loss"][1], rtol=1e-5
    )
    with pytest.raises(ValueError, match="model_loop"):
        evaluate(state, program.graphdef, model_loop="pmap", **kwargs)


def test_low_optimization_compiler_options_give_the_same_metrics():
    from pe_jax.benchmark._eval import LOW_OPTIMIZATION

    settings, program, state = _initial_state(get_config("protocol=encoder,smoke"))
    kwargs = dict(task=settings.task, layout="encoder", lengths=[3, 7], samples=4, seed=4)
    default = evaluate(state, program.graphdef, **kwargs)
    low = evaluate(state, program.graphdef, compiler_options=LOW_OPTIMIZATION, **kwargs)
    for name in ("token_accuracy", "exact_match", "loss"):
        np.testing.assert_allclose(low["metrics"][name], default["metrics"][name], rtol=1e-5)
    with pytest.raises(Exception, match="xla_no_such_option"):
        evaluate(state, program.graphdef, compiler_options={"xla_no_such_option": 1}, **kwargs)
