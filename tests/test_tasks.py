"""Tests of pe_jax.tasks: every sampler against a brute-force pure-Python reference."""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pe_jax import tasks
from pe_jax.tasks import EMPTY, END, FIRST_SYMBOL, PAD, SEP

REQUIRED = (
    "copy",
    "reverse",
    "duplicate",
    "sort",
    "addition",
    "parity",
    "odds_first",
    "missing_duplicate",
)
EXTRAS = ("selective_copy", "associative_recall", "flip_flop")

# (name, options) pairs covering every option value at least once.
CONFIGS = (
    ("copy", {}),
    ("copy", {"variant": "repeat", "num_symbols": 7}),
    ("reverse", {}),
    ("reverse", {"variant": "2x", "num_symbols": 5}),
    ("duplicate", {"num_symbols": 3}),
    ("sort", {}),
    ("odds_first", {}),
    ("odds_first", {"order": "paper", "num_symbols": 3}),
    ("parity", {}),
    ("parity", {"num_symbols": 3}),
    ("missing_duplicate", {}),
    ("missing_duplicate", {"num_symbols": 3}),
    ("addition", {}),
    ("addition", {"base": 10, "reverse_operands": False}),
    ("addition", {"operands": "independent"}),
    (
        "addition",
        {"base": 10, "operands": "independent", "reverse_operands": False, "reverse_answer": False},
    ),
    ("selective_copy", {"num_symbols": 3, "blanks_per_symbol": 2}),
    ("associative_recall", {"num_keys": 3, "num_values": 4}),
    ("flip_flop", {"p_ignore": 0.5}),
)
LAYOUTS = ("encoder", "decoder")
VMAPPED = (("addition", "decoder"), ("selective_copy-num_symbols=3-blanks_per_symbol=2", "encoder"))
BATCH = 12
MAX_LEN = 9
# Two curricula of mixed per-example lengths, both including length 1 and the maximum.
LENGTHS = (
    np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 9, 3], np.int32),
    np.array([9, 1, 1, 2, 9, 4, 8, 5, 7, 6, 3, 2], np.int32),
)


def config_id(config) -> str:
    name, options = config
    return name + "".join(f"-{k}={v}" for k, v in options.items())


# ----------------------------------------------------------------------------- reference
def ref_output_length(name: str, options: dict, t: int) -> int:
    if name == "duplicate" or (name == "reverse" and options.get("variant") == "2x"):
        return 2 * t + (name == "reverse")
    if name in ("parity", "missing_duplicate", "associative_recall", "flip_flop"):
        return 1
    if name == "addition":
        return t + 1 if options.get("operands", "split") == "split" else t + 2
    return t


def ref_max_prompt(name: str, options: dict, t: int) -> int:
    if name == "addition" and options.get("operands") == "independent":
        return 2 * t + 1
    if name in ("associative_recall", "flip_flop"):
        return 2 * t + 1
    if name == "selective_copy":
        return (1 + options.get("blanks_per_symbol", 1)) * t
    return t


def ref_width(name: str, options: dict, t: int, layout: str) -> int:
    out = ref_output_length(name, options, t)
    if layout == "encoder":
        return ref_max_prompt(name, options, t) + out
    return ref_max_prompt(name, options, t) + out - (name == "addition") + 1


def to_int(digit_ids: list[int], base: int, little_endian: bool) -> int:
    text = "".join(str(d - FIRST_SYMBOL) for d in digit_ids)
    return int(text[::-1] if little_endian else text, base)


def to_digit_ids(value: int, base: int, little_endian: bool) -> list[int]:
    digits = []
    while True:
        digits.append(value % base)
        value //= base
        if value == 0:
            break
    ids = [FIRST_SYMBOL + d for d in digits]
    return ids if little_endian else ids[::-1]


def ref_answer(name: str, options: dict, prompt: list[int], t: int) -> list[int]:
    """Checks that `prompt` is a valid input of length t; returns the expected answer."""
    n = options.get("num_symbols", 5 if name == "sort" else 2)
    symbols = set(range(FIRST_SYMBOL, FIRST_SYMBOL + n))
    assert len(prompt) == ref_max_prompt(name, options, t) or name == "addition"
    if name in EXTRAS:
        return ref_recall(name, options, prompt, t)
    if name == "missing_duplicate":
        missing, fill = FIRST_SYMBOL + n, FIRST_SYMBOL + n + 1
        if t == 1:
            assert prompt == [FIRST_SYMBOL + 1]
            return [FIRST_SYMBOL + 1]
        half = t // 2
        body = prompt[: 2 * half]
        assert prompt[2 * half :] == ([fill] if t % 2 else [])
        assert body.count(missing) == 1 and set(body) - {missing} <= symbols
        m = body.index(missing)
        for j in range(2 * half):
            if m not in (j, (j + half) % (2 * half)):
                assert body[j] == body[(j + half) % (2 * half)]
        return [body[(m + half) % (2 * half)]]
    if name == "addition":
        return ref_addition(options, prompt, t)
    assert set(prompt) <= symbols
    if name == "copy":
        if options.get("variant") == "repeat":
            assert len(set(prompt)) == 1
        return list(prompt)
    if name == "reverse":
        if options.get("variant") == "2x":
            return prompt[::-1] + [FIRST_SYMBOL + n] + prompt[::-1]  # NEXT between the copies
        return list(reversed(prompt))
    if name == "duplicate":
        return prompt + prompt
    if name == "sort":
        return sorted(prompt)
    if name == "odds_first":  # 1-based even positions first unless order="paper"
        if options.get("order", "released") == "paper":
            return prompt[0::2] + prompt[1::2]
        return prompt[1::2] + prompt[0::2]
    if name == "parity":
        return [FIRST_SYMBOL + sum(s - FIRST_SYMBOL for s in prompt) % 2]
    raise AssertionError(name)


def ref_addition(options: dict, prompt: list[int], t: int) -> list[int]:
    base = options.get("base", 2)
    split = options.get("operands", "split") == "split"
    plus = FIRST_SYMBOL + base
    digits = set(range(FIRST_SYMBOL, FIRST_SYMBOL + base))
    le_in = options.get("reverse_operands", True)
    if split and t <= 2:
        assert len(prompt) == t and set(prompt) <= digits
        total = to_int(prompt, base, le_in)
    else:
        assert prompt.count(plus) == 1
        a, c = prompt[: prompt.index(plus)], prompt[prompt.index(plus) + 1 :]
        assert a and c and set(a + c) <= digits
        if split:
            assert len(prompt) == t
            assert to_int(a, base, le_in) >= 1 and to_int(c, base, le_in) >= 1
        else:
            assert max(len(a), len(c)) == t
            for operand in (a, c):
                most_significant = operand[-1] if le_in else operand[0]
                assert len(operand) == 1 or most_significant != FIRST_SYMBOL
        total = to_int(a, base, le_in) + to_int(c, base, le_in)
    return to_digit_ids(total, base, options.get("reverse_answer", True))


def ref_recall(name: str, options: dict, prompt: list[int], t: int) -> list[int]:
    if name == "selective_copy":
        n = options.get("num_symbols", 2)
        blank = FIRST_SYMBOL + n
        kept = [s for s in prompt if s != blank]
        assert len(kept) == t and all(FIRST_SYMBOL <= s < blank for s in kept)
        return kept
    if name == "associative_recall":
        k, v = options.get("num_keys", 8), options.get("num_values", 8)
        keys, values, query = prompt[0:-1:2], prompt[1:-1:2], prompt[-1]
        assert all(FIRST_SYMBOL <= x < FIRST_SYMBOL + k for x in keys + [query])
        assert all(FIRST_SYMBOL + k <= x < FIRST_SYMBOL + k + v for x in values)
        assert query in keys
        binding = {}
        for key, value in zip(keys, values, strict=True):
            binding[key] = value  # later pairs overwrite earlier ones
        return [binding[query]]
    write, read, ignore = FIRST_SYMBOL + 2, FIRST_SYMBOL + 3, FIRST_SYMBOL + 4
    ops, bits = prompt[0:-1:2], prompt[1:-1:2]
    assert ops[0] == write and prompt[-1] == read
    memory = None
    for op, bit in zip(ops, bits, strict=True):
        assert op in (write, read, ignore) and bit in (FIRST_SYMBOL, FIRST_SYMBOL + 1)
        if op == write:
            memory = bit
        elif op == read:
            assert bit == memory
    return [memory]


def check_against_reference(batch, name: str, options: dict, layout: str, lengths) -> None:
    """Rebuilds every example with plain lists and compares all Batch fields exactly."""
    inputs = np.asarray(batch.inputs).tolist()
    width = len(inputs[0])
    np.testing.assert_array_equal(batch.lengths, lengths)
    assert "positions" not in batch._fields  # always arange(width): the model's default
    assert batch.inputs.shape[1] == width
    for b, t in enumerate(int(v) for v in lengths):
        stop = EMPTY if layout == "encoder" else SEP
        prompt = inputs[b][: inputs[b].index(stop)]
        p = len(prompt)
        answer = ref_answer(name, options, prompt, t)
        out = ref_output_length(name, options, t)
        if layout == "encoder":
            scored = answer + [END] if name == "addition" else answer
            assert len(scored) <= out
            exp_inputs = prompt + [EMPTY] * out
            exp_targets = [PAD] * p + scored
            exp_mask = [False] * p + [True] * len(scored)
            exp_valid = [True] * (p + out)
        else:
            seq = prompt + [SEP] + answer + [END]
            exp_inputs, exp_targets = seq[:-1], seq[1:]
            exp_mask = [False] * p + [True] * (len(answer) + 1)
            exp_valid = [True] * (len(seq) - 1)

        def pad(row, value):
            assert len(row) <= width
            return row + [value] * (width - len(row))

        assert inputs[b] == pad(exp_inputs, PAD), (b, t)
        assert np.asarray(batch.targets[b]).tolist() == pad(exp_targets, PAD), (b, t)
        assert np.asarray(batch.loss_mask[b]).tolist() == pad(exp_mask, False), (b, t)
        assert np.asarray(batch.valid[b]).tolist() == pad(exp_valid, False), (b, t)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def jitted_batches():
    """All configs x layouts sampled by ONE jitted program (traced lengths) on both curricula.

    One program keeps the file fast; it also counts traces to show lengths never recompile.
    """
    built = {}
    for config in CONFIGS:
        for layout in LAYOUTS:
            task = tasks.get_task(config[0], **config[1])
            built[config_id(config), layout] = (task, task.width(MAX_LEN, layout))
    traces = []

    # Optimization level 0: XLA's CPU backend passes dominate this file's time, not sampling.
    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    def sample_all(key, lengths):
        traces.append(1)  # Python side effect: runs once per compilation
        batches = {
            k: task.sample(
                jax.random.fold_in(key, i), batch_size=BATCH, length=lengths, layout=k[1], width=w
            )
            for i, (k, (task, w)) in enumerate(built.items())
        }
        # vmap over keys (as the trainer does over seeds) must equal the unbatched samples.
        vmapped = {}
        for k in VMAPPED:
            index = list(built).index(k)
            task, w = built[k]
            other = jax.random.fold_in(key, 5000 + index)
            keys = jnp.stack([jax.random.fold_in(key, index), other])
            sample = functools.partial(
                task.sample, batch_size=BATCH, length=lengths, layout=k[1], width=w
            )
            vmapped[k] = (jax.vmap(sample)(keys), sample(other))
        return batches, vmapped, sample_large(jax.random.fold_in(key, 1000))

    key = jax.random.key(0)
    results = [sample_all(key, jnp.asarray(lengths))[0] for lengths in LENGTHS]
    again, vmapped, large = sample_all(key, jnp.asarray(LENGTHS[0]))
    other_key = sample_all(jax.random.key(1), jnp.asarray(LENGTHS[0]))[0]
    return {
        "vmapped": vmapped,
        "results": results,
        "again": again,
        "other_key": other_key,
        "traces": len(traces),
        "built": built,
        "large": large,
    }


def sample_large(key):
    """Bigger batches at fixed lengths for distribution checks (one program for all)."""
    keys = jax.random.split(key, 4)
    split = tasks.get_task("addition").sample(keys[0], batch_size=256, length=6, layout="encoder")
    indep = tasks.get_task("addition", operands="independent").sample(
        keys[1], batch_size=256, length=3, layout="decoder"
    )
    missing = tasks.get_task("missing_duplicate").sample(
        keys[2], batch_size=64, length=6, layout="encoder"
    )
    flip_flop = tasks.get_task("flip_flop").sample(
        keys[3], batch_size=64, length=20, layout="decoder"
    )
    return {"split": split, "independent": indep, "missing": missing, "flip_flop": flip_flop}


# ----------------------------------------------------------------------------- tests
def test_list_tasks_has_required():
    assert set(REQUIRED + EXTRAS) == set(tasks.list_tasks())
    assert list(tasks.list_tasks()) == sorted(tasks.list_tasks())


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_matches_reference_traced_mixed_lengths(jitted_batches, config, layout):
    name, options = config
    for lengths, results in zip(LENGTHS, jitted_batches["results"], strict=True):
        batch = results[config_id(config), layout]
        assert batch.inputs.shape == (BATCH, ref_width(name, options, MAX_LEN, layout))
        check_against_reference(batch, name, options, layout, lengths)


def test_vmap_over_keys_equals_separate_samples(jitted_batches):
    first = jitted_batches["results"][0]
    for k in VMAPPED:
        both, second = jitted_batches["vmapped"][k]
        for stacked, one, two in zip(both, first[k], second, strict=True):
            np.testing.assert_array_equal(stacked[0], one)
            np.testing.assert_array_equal(stacked[1], two)
        assert not np.array_equal(both.inputs[0], both.inputs[1])


def test_traced_lengths_compile_once(jitted_batches):
    assert jitted_batches["traces"] == 1


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_widths_and_output_lengths(config):
    name, options = config
    task = tasks.get_task(name, **options)
    for t in (1, 2, 3, 7, 40):
        assert task.output_length(t) == ref_output_length(name, options, t)
        np.testing.assert_array_equal(
            task.output_length(jnp.array([t, t])), [ref_output_length(name, options, t)] * 2
        )
        for layout in LAYOUTS:
            width = ref_width(name, options, t, layout)
            assert task.width(t, layout) == width
            assert task.max_length(width, layout) == t
            if t > 1:
                assert task.max_length(width - 1, layout) == t - 1


def test_batch_invariants(jitted_batches):
    for (cid, layout), (task, width) in jitted_batches["built"].items():
        for results in jitted_batches["results"]:
            b = results[cid, layout]
            assert b.inputs.shape == b.targets.shape == b.loss_mask.shape == (BATCH, width)
            assert b.valid.shape == (BATCH, width), cid
            assert b.inputs.dtype == b.targets.dtype == jnp.int32
            assert b.loss_mask.dtype == b.valid.dtype == jnp.bool_
            assert b.lengths.shape == (BATCH,) and b.lengths.dtype == jnp.int32
            inputs, targets = np.asarray(b.inputs), np.asarray(b.targets)
            valid, mask = np.asarray(b.valid), np.asarray(b.loss_mask)
            assert inputs.min() >= 0 and inputs.max() < task.vocab_size, cid
            assert targets.min() >= 0 and targets.max() < task.vocab_size, cid
            assert (inputs[~valid] == PAD).all() and (inputs[valid] != PAD).all(), cid
            assert (targets[~valid] == PAD).all() and (targets[mask] != PAD).all(), cid
            if layout == "encoder":  # decoder targets are seq[1:], prompt included
                assert (targets[~mask] == PAD).all(), cid
            assert not (mask & ~valid).any(), cid
            # Padding only at the end: valid is a prefix.
            assert (np.diff(valid.astype(int), axis=1) <= 0).all(), cid


def test_same_key_same_batch_and_different_keys_differ(jitted_batches):
    first, again = jitted_batches["results"][0], jitted_batches["again"]
    other = jitted_batches["other_key"]
    for k, batch in first.items():
        for x, y in zip(batch, again[k], strict=True):
            np.testing.assert_array_equal(x, y)
        assert not np.array_equal(batch.inputs, other[k].inputs), k


@pytest.mark.parametrize("layout", LAYOUTS)
def test_python_int_length_eager(layout):
    """The int path (default width) is the array path at that width, and matches the reference."""
    name, options, length = "addition", {"base": 10}, 5
    task = tasks.get_task(name, **options)
    batch = task.sample(jax.random.key(3), batch_size=6, length=length, layout=layout)
    assert batch.inputs.shape == (6, ref_width(name, options, length, layout))
    check_against_reference(batch, name, options, layout, [length] * 6)
    as_array = task.sample(
        jax.random.key(3),
        batch_size=6,
        length=np.full(6, length, np.int32),
        layout=layout,
        width=batch.inputs.shape[1],
    )
    for x, y in zip(batch, as_array, strict=True):
        np.testing.assert_array_equal(x, y)


def test_prompts_use_every_symbol_and_vary(jitted_batches):
    """A degenerate generator (constant symbols) would pass the reference; this would not."""
    for (cid, layout), (task, _) in jitted_batches["built"].items():
        batch = jitted_batches["results"][0][cid, layout]
        stop = EMPTY if layout == "encoder" else SEP
        prompts = [row[: row.index(stop)] for row in np.asarray(batch.inputs).tolist()]
        used = {s for prompt in prompts for s in prompt}
        assert len({tuple(p) for p in prompts}) >= 8, cid
        if cid.startswith("copy-variant=repeat"):
            assert all(len(set(p)) == 1 for p in prompts) and len(used) >= 3, cid
        else:
            symbols = getattr(task, "symbols", None) or task.key_ids + task.value_ids
            assert set(symbols) <= used, cid
        if cid.startswith("parity"):
            answers = set(np.asarray(batch.targets)[np.asarray(batch.loss_mask)].tolist())
            assert {FIRST_SYMBOL, FIRST_SYMBOL + 1} <= answers, cid


def test_missing_duplicate_masks_every_position(jitted_batches):
    batch = jitted_batches["large"]["missing"]
    missing_id = tasks.get_task("missing_duplicate").missing_id
    where = np.argmax(np.asarray(batch.inputs[:, :6]) == missing_id, axis=1)
    assert set(where.tolist()) == set(range(6))


def test_addition_operand_lengths_and_values_cover_their_ranges(jitted_batches):
    split = tasks.get_task("addition")  # Deletang: n_a uniform in [1, T-2], values >= 1
    batch = jitted_batches["large"]["split"]
    check_against_reference(batch, "addition", {}, "encoder", [6] * 256)
    rows = np.asarray(batch.inputs[:, :6]).tolist()
    n_a = collections.Counter(row.index(split.plus_id) for row in rows)
    assert set(n_a) == {1, 2, 3, 4}
    assert min(n_a.values()) > 256 / 4 / 2
    values = collections.Counter(
        to_int(row[:3], 2, True) for row in rows if row[3] == split.plus_id
    )
    assert set(values) == set(range(1, 8))  # n_a = 3 digits: every value in [1, 7], never 0
    indep = tasks.get_task("addition", operands="independent")
    batch = jitted_batches["large"]["independent"]
    check_against_reference(batch, "addition", {"operands": "independent"}, "decoder", [3] * 256)
    pairs = collections.Counter()
    for row in np.asarray(batch.inputs).tolist():
        prompt = row[: row.index(SEP)]
        cut = prompt.index(indep.plus_id)
        pairs[cut, len(prompt) - cut - 1] += 1
    assert set(pairs) == {(3, 1), (3, 2), (3, 3), (1, 3), (2, 3)}
    assert min(pairs.values()) > 256 / 5 / 2


def test_flip_flop_instruction_frequencies(jitted_batches):
    batch = jitted_batches["large"]["flip_flop"]
    check_against_reference(batch, "flip_flop", {}, "decoder", [20] * 64)
    ops = collections.Counter(np.asarray(batch.inputs[:, 2:40:2]).ravel().tolist())
    total = sum(ops.values())  # 64 * 19 instructions after the first write
    assert abs(ops[FIRST_SYMBOL + 4] / total - 0.8) < 0.05
    assert abs(ops[FIRST_SYMBOL + 2] - ops[FIRST_SYMBOL + 3]) < 0.05 * total
    answers = set(np.asarray(batch.targets)[np.asarray(batch.loss_mask)].tolist())
    assert {FIRST_SYMBOL, FIRST_SYMBOL + 1, END} == answers


def test_traced_lengths_are_clipped_into_the_width():
    task = tasks.get_task("reverse")
    width = task.width(4, "encoder")
    sample = jax.jit(
        lambda key, lengths: task.sample(
            key, batch_size=3, length=lengths, layout="encoder", width=width
        )
    )
    batch = sample(jax.random.key(0), jnp.array([0, 3, 99]))
    np.testing.assert_array_equal(batch.lengths, [1, 3, 4])
    check_against_reference(batch, "reverse", {}, "encoder", [1, 3, 4])


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="nope.*addition"):
        tasks.get_task("nope")
    with pytest.raises(ValueError, match="colour"):
        tasks.get_task("copy", colour="red")
    with pytest.raises(ValueError, match="base"):
        tasks.get_task("parity", base=2)
    bad = [
        ("copy", {"variant": "shuffled"}, "variant"),
        ("copy", {"num_symbols": 1}, "num_symbols"),
        ("reverse", {"variant": "3x"}, "variant"),
        ("odds_first", {"order": "odd"}, "order"),
        ("sort", {"num_symbols": 2.5}, "num_symbols"),
        ("addition", {"base": 3}, "base"),
        ("addition", {"operands": "both"}, "operands"),
        ("addition", {"reverse_answer": "yes"}, "reverse_answer"),
        ("addition", {"reverse_operands": 1}, "reverse_operands"),
        ("selective_copy", {"blanks_per_symbol": -1}, "blanks_per_symbol"),
        ("associative_recall", {"num_keys": 1}, "num_keys"),
        ("associative_recall", {"num_values": "8"}, "num_values"),
        ("flip_flop", {"p_ignore": 1.0}, "p_ignore"),
    ]
    for name, options, match in bad:
        with pytest.raises(ValueError, match=match):
            tasks.get_task(name, **options)


def test_bad_sample_arguments():
    task = tasks.get_task("copy")
    key = jax.random.key(0)
    cases = [
        ({"length": 0}, "length"),
        ({"length": -3}, "length"),
        ({"length": True}, "length"),
        ({"length": 2.0}, "length"),
        ({"length": np.array([1, 0, 2, 3])}, "length"),
        ({"length": np.array([1, 2, 3])}, "length"),
        ({"length": np.array([[1, 2, 3, 4]])}, "length"),
        ({"length": 5, "width": 9}, "width"),
        ({"length": np.array([1, 5, 2, 3]), "width": 9}, "width"),
        ({"length": 1, "width": 1}, "width"),
        ({"length": 1, "width": 0}, "width"),
        ({"length": 1, "layout": "causal"}, "layout"),
        ({"length": 1, "batch_size": 0}, "batch_size"),
    ]
    for overrides, match in cases:
        kwargs = {"batch_size": 4, "layout": "encoder", **overrides}
        with pytest.raises(ValueError, match=match):
            task.sample(key, **kwargs)
    with pytest.raises(ValueError, match="width"):
        jax.jit(lambda n: task.sample(key, batch_size=4, length=n, layout="decoder"))(
            jnp.ones(4, jnp.int32)
        )
    with pytest.raises(ValueError, match="length"):
        jax.jit(lambda n: task.sample(key, batch_size=4, length=n, layout="decoder", width=9))(
            jnp.ones(4, jnp.float32)
        )
    with pytest.raises(ValueError, match="length"):
        jax.jit(lambda n: task.sample(key, batch_size=4, length=n, layout="decoder", width=9))(
            jnp.ones((2, 2), jnp.int32)
        )
    with pytest.raises(ValueError, match="length"):
        task.width(0, "encoder")
    with pytest.raises(ValueError, match="layout"):
        task.width(3, "seq2seq")
