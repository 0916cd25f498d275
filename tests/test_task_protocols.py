"""The tasks against the official generators: hand-written cases and sampler statistics.

Encoder protocol: google-deepmind/neural_networks_chomsky_hierarchy, tasks/ (Deletang et al.
2023, also used by Ruoss et al. 2023). Decoder protocol: McGill-NLP/length-generalization,
scripts/dataset_builders/make_*_dataset.py (Kazemnejad et al. 2023). Their one-hot or text
formats become token ids here: symbol v is id FIRST_SYMBOL + v, specials PAD, EMPTY, SEP, END.

A case is (task symbols in, task symbols out); `expected_rows` lays it out by hand in both
layouts. Symbol tasks are fed the case's symbols through a subclass whose draw returns them;
tasks that draw more than symbols (missing_duplicate, addition) are sampled in bulk with a
fixed key and every row whose input is a case is checked (each case must occur).
"""

from __future__ import annotations

import collections

import jax
import numpy as np
import pytest
from scipy import stats

from pe_jax import tasks
from pe_jax.tasks import EMPTY, END, FIRST_SYMBOL, PAD, SEP

LAYOUTS = ("encoder", "decoder")
S = FIRST_SYMBOL  # id of symbol 0


def ids(values) -> list[int]:
    return [S + v for v in values]


def expected_rows(prompt, answer, layout, *, terminated, num_slots, width):
    """The four Batch rows of one example, written out from the layouts' definitions."""
    p = len(prompt)
    if layout == "encoder":
        scored = answer + ([END] if terminated else [])
        inputs = prompt + [EMPTY] * num_slots
        targets = [PAD] * p + scored
        mask = [False] * p + [True] * len(scored)
    else:
        seq = prompt + [SEP] + answer + [END]
        inputs, targets = seq[:-1], seq[1:]
        mask = [False] * p + [True] * (len(answer) + 1)
    valid = [True] * len(inputs)
    grow = width - len(inputs)
    return (
        inputs + [PAD] * grow,
        targets + [PAD] * (width - len(targets)),
        mask + [False] * (width - len(mask)),
        valid + [False] * grow,
    )


def check_row(batch, row, prompt, answer, task, layout):
    width = batch.inputs.shape[1]
    t = int(batch.lengths[row])
    want = expected_rows(
        prompt,
        answer,
        layout,
        terminated=task.terminated,
        num_slots=int(task.output_length(t)),
        width=width,
    )
    got = [
        np.asarray(x[row]).tolist()
        for x in (batch.inputs, batch.targets, batch.loss_mask, batch.valid)
    ]
    for name, g, w in zip(("inputs", "targets", "loss_mask", "valid"), got, want, strict=True):
        assert g == w, (name, prompt, answer, layout)


def fixed(task_cls, symbols):
    """A subclass of a symbol task whose draws return `symbols` (one example's input)."""

    class Fixed(task_cls):
        def _draw(self, key, batch, count):
            row = (ids(symbols) * count)[:count]
            return jax.numpy.broadcast_to(jax.numpy.array(row, jax.numpy.int32), (batch, count))

    Fixed.__name__ = f"Fixed{task_cls.__name__}"
    return Fixed


# (task, options, input symbols, answer symbols); answers worked out by hand.
SYMBOL_CASES = [
    # tasks/dcf/reverse_string.py: binary, output = input flipped, length T.
    ("reverse", {}, [0, 1, 1, 0, 0], [0, 0, 1, 1, 0]),
    # make_reverse_dataset.py "multi_char": 100 tokens, reversed.
    ("reverse", {"num_symbols": 100}, [17, 99, 0, 42], [42, 0, 99, 17]),
    # make_reverse_dataset.py "multi_char_2x": reversed, [NEXT], reversed (NEXT = symbol 100).
    ("reverse", {"num_symbols": 100, "variant": "2x"}, [17, 99, 3], [3, 99, 17, 100, 3, 99, 17]),
    # tasks/cs/duplicate_string.py: s -> s s, no separator, length 2T.
    ("duplicate", {}, [1, 1, 0], [1, 1, 0, 1, 1, 0]),
    # tasks/cs/bucket_sort.py: 5 symbols, sorted increasingly.
    ("sort", {}, [4, 0, 3, 0, 2, 4], [0, 0, 2, 3, 4, 4]),
    # make_sort_dataset.py "single_digit": 50 tokens sorted by their rank.
    ("sort", {"num_symbols": 50}, [49, 7, 23, 7], [7, 7, 23, 49]),
    # tasks/cs/odds_first.py samples 0-based odd indices first: x2 x4 .. x1 x3 ..
    ("odds_first", {}, [1, 0, 0, 1, 1], [0, 1, 1, 0, 1]),
    ("odds_first", {}, [0, 1, 1, 1, 0, 0], [1, 1, 0, 0, 1, 0]),
    # Its docstring's order (x1 x3 .. x2 x4 ..), option order="paper".
    ("odds_first", {"order": "paper"}, [1, 0, 0, 1, 1], [1, 0, 1, 0, 1]),
    # tasks/regular/parity_check.py: number of 1s mod 2, one output.
    ("parity", {}, [1, 0, 1, 1], [1]),
    ("parity", {}, [0, 1, 1, 0, 1, 1], [0]),
    ("parity", {}, [0], [0]),
    # make_copy_dataset.py "copy_multi_char": 100 tokens, copied.
    ("copy", {"num_symbols": 100}, [5, 93, 5], [5, 93, 5]),
    # make_copy_dataset.py "repeat_single_char": one token (of many) repeated.
    ("copy", {"num_symbols": 100, "variant": "repeat"}, [77, 77, 77, 77], [77, 77, 77, 77]),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "case", SYMBOL_CASES, ids=lambda c: f"{c[0]}-{'-'.join(map(str, c[1].values()))}"
)
def test_symbol_task_cases(case, layout):
    """Hand-written cases of the symbol tasks, padded to a wider width than they need.

    Sources: tasks/dcf/reverse_string.py, tasks/cs/{duplicate_string,bucket_sort,odds_first}.py,
    tasks/regular/parity_check.py (neural_networks_chomsky_hierarchy); make_{copy,reverse,
    sort}_dataset.py (McGill-NLP/length-generalization).
    """
    name, options, symbols, answer = case
    base = type(tasks.get_task(name, **options))
    task = fixed(base, symbols)(**options)
    t = len(symbols)
    width = task.width(t + 2, layout)  # room for padding after the example
    batch = task.sample(jax.random.key(0), batch_size=2, length=t, layout=layout, width=width)
    for row in range(2):
        check_row(batch, row, ids(symbols), ids(answer), task, layout)
    assert task.output_length(t) == len(answer)


def bulk(task, length, layout, batch_size, seed=0):
    return task.sample(
        jax.random.key(seed), batch_size=batch_size, length=length, layout=layout
    ), task.width(length, layout)


def prompts(batch, layout):
    stop = EMPTY if layout == "encoder" else SEP
    return [tuple(row[: row.index(stop)]) for row in np.asarray(batch.inputs).tolist()]


def check_cases_in_bulk(task, cases, layout, batch_size):
    """Every case occurs in a bulk sample of its length, and every occurrence matches it."""
    for length in sorted({t for t, _, _ in cases}):
        batch, _ = bulk(task, length, layout, batch_size)
        rows = collections.defaultdict(list)
        for row, prompt in enumerate(prompts(batch, layout)):
            rows[prompt].append(row)
        for t, prompt, answer in cases:
            if t != length:
                continue
            found = rows.get(tuple(prompt), [])
            assert found, (prompt, "never sampled")
            for row in found:
                check_row(batch, row, list(prompt), answer, task, layout)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_missing_duplicate_cases(layout):
    """tasks/cs/missing_duplicate_string.py: s s with one symbol replaced by a placeholder
    (here MISSING = symbol 2), a pad token (here FILL = symbol 3) when T is odd, the answer the
    replaced symbol; at T = 1 the input is 1 and the answer 1."""
    task = tasks.get_task("missing_duplicate")
    m, f = task.missing_id, task.fill_id
    cases = [
        (1, [S + 1], [S + 1]),
        (4, [S + 1, m, S + 1, S + 1], [S + 1]),
        (4, [S + 0, S + 1, S + 0, m], [S + 1]),
        (5, ids([0, 1]) + [m, S + 1, f], [S + 0]),
        (5, [m] + ids([1, 1, 1]) + [f], [S + 1]),
        (6, ids([1, 0, 0, 1]) + [m, S + 0], [S + 0]),
    ]
    check_cases_in_bulk(task, cases, layout, batch_size=2048)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_binary_addition_cases(layout):
    """tasks/cs/binary_addition.py: little-endian a + c (+ is its own token) of T tokens, the
    operands splitting T - 1 digits, each >= 1 written with exactly its digit count; the sum
    little-endian without trailing zeros, then a terminator; for T <= 2 the input is one
    number, the answer that number. Output slots T + 1."""
    task = tasks.get_task("addition")
    plus = task.plus_id
    cases = [
        (1, ids([1]), ids([1])),
        (2, ids([0, 1]), ids([0, 1])),  # 2 -> 2
        (2, ids([1, 0]), ids([1])),  # 1 -> 1: no trailing zero
        (5, ids([1, 1]) + [plus] + ids([0, 1]), ids([1, 0, 1])),  # 3 + 2 = 5
        (5, ids([1]) + [plus] + ids([1, 1, 1]), ids([0, 0, 0, 1])),  # 1 + 7 = 8
        (5, ids([0, 1, 1]) + [plus] + ids([1]), ids([1, 1, 1])),  # 6 + 1 = 7
    ]
    check_cases_in_bulk(task, cases, layout, batch_size=1024)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_decimal_addition_cases(layout):
    """make_addition_dataset.py: operands of n_a and n_c digits (an n-digit operand is in
    [10**(n-1), 10**n - 1], [0, 9] for one digit), written most significant digit first with
    "+" between them; the answer is the sum, most significant digit first. T is the longer
    operand's digit count here; the answer ends with END."""
    task = tasks.get_task(
        "addition", base=10, operands="independent", reverse_operands=False, reverse_answer=False
    )
    plus = task.plus_id
    cases = [
        (1, ids([7]) + [plus] + ids([5]), ids([1, 2])),
        (1, ids([0]) + [plus] + ids([0]), ids([0])),
        (2, ids([5, 7]) + [plus] + ids([8]), ids([6, 5])),
        (2, ids([9]) + [plus] + ids([9, 4]), ids([1, 0, 3])),
    ]
    check_cases_in_bulk(task, cases, layout, batch_size=16384)


# ----------------------------------------------------------------------------- statistics
def assert_uniform(counts: collections.Counter, categories, what: str):
    """Chi-square goodness of fit against the uniform law over `categories` (p > 1e-4)."""
    observed = np.array([counts.get(c, 0) for c in categories], float)
    assert sum(counts.values()) == observed.sum(), (what, "value outside the support")
    p = stats.chisquare(observed).pvalue
    assert p > 1e-4, (what, p)


@pytest.mark.parametrize(
    "name, options, alphabet",
    [
        ("reverse", {}, 2),
        ("reverse", {"num_symbols": 100, "variant": "2x"}, 100),
        ("duplicate", {}, 2),
        ("sort", {}, 5),
        ("sort", {"num_symbols": 50}, 50),
        ("odds_first", {}, 2),
        ("parity", {}, 2),
        ("copy", {"num_symbols": 100}, 100),
    ],
)
def test_symbols_are_uniform_iid(name, options, alphabet):
    """Every generator above draws symbols with uniform randint (bucket_sort.py, odds_first.py,
    duplicate_string.py, parity_check.py; make_{copy,reverse,sort}_dataset.py): each symbol's
    frequency and the first two positions' joint frequency are uniform."""
    task = tasks.get_task(name, **options)
    batch, _ = bulk(task, 6, "decoder", batch_size=4096, seed=1)
    rows = np.asarray(batch.inputs[:, :6]) - S
    assert_uniform(collections.Counter(rows.ravel().tolist()), range(alphabet), "symbols")
    if alphabet <= 5:
        pairs = collections.Counter(zip(rows[:, 0].tolist(), rows[:, 1].tolist(), strict=True))
        cells = [(a, b) for a in range(alphabet) for b in range(alphabet)]
        assert_uniform(pairs, cells, "pairs")


def test_copy_repeat_token_is_uniform_over_a_large_vocabulary():
    """make_copy_dataset.py "repeat_single_char": one token repeated T times; which token
    varies over many tokens (here uniform over num_symbols = 100)."""
    task = tasks.get_task("copy", variant="repeat", num_symbols=100)
    batch, _ = bulk(task, 5, "decoder", batch_size=8192, seed=2)
    rows = np.asarray(batch.inputs[:, :5]) - S
    assert (rows == rows[:, :1]).all()
    assert_uniform(collections.Counter(rows[:, 0].tolist()), range(100), "repeated token")


def test_parity_classes_are_balanced():
    """parity_check.py: uniform bits, so both classes have probability 1/2 at every T."""
    task = tasks.get_task("parity")
    for length in (1, 2, 7):
        batch, _ = bulk(task, length, "encoder", batch_size=4096, seed=length)
        answers = np.asarray(batch.targets)[np.asarray(batch.loss_mask)] - S
        assert_uniform(collections.Counter(answers.tolist()), range(2), f"parity T={length}")


def test_missing_duplicate_position_and_symbols_are_uniform():
    """missing_duplicate_string.py: string uniform over {0,1}^(T//2), masked index uniform
    over the 2 (T//2) positions of s s."""
    task = tasks.get_task("missing_duplicate")
    batch, _ = bulk(task, 7, "encoder", batch_size=6000, seed=3)
    rows = np.asarray(batch.inputs[:, :7])
    where = np.argmax(rows == task.missing_id, axis=1)
    assert_uniform(collections.Counter(where.tolist()), range(6), "masked position")
    assert (rows[:, 6] == task.fill_id).all()
    answers = np.asarray(batch.targets)[np.asarray(batch.loss_mask)] - S
    assert_uniform(collections.Counter(answers.tolist()), range(2), "answers")


def test_binary_addition_split_and_values():
    """binary_addition.py: n_a uniform in [1, T-2], n_c = T - 1 - n_a, each operand uniform in
    [1, 2**n - 1]."""
    task = tasks.get_task("addition")
    t = 7
    batch, _ = bulk(task, t, "encoder", batch_size=8192, seed=4)
    rows = np.asarray(batch.inputs[:, :t]).tolist()
    n_a = [row.index(task.plus_id) for row in rows]
    assert_uniform(collections.Counter(n_a), range(1, t - 1), "n_a")

    def value(digits):  # little-endian
        return sum((d - S) << k for k, d in enumerate(digits))

    threes = [value(row[:3]) for row, n in zip(rows, n_a, strict=True) if n == 3]
    assert_uniform(collections.Counter(threes), range(1, 8), "3-digit a")
    threes = [value(row[4:]) for row, n in zip(rows, n_a, strict=True) if n == 3]
    assert_uniform(collections.Counter(threes), range(1, 8), "3-digit c")


def test_decimal_addition_lengths_and_values():
    """make_addition_dataset.py: every (n_a, n_c) bin equally filled, so given the longer
    length T the pair is uniform over the 2T - 1 pairs with max(n_a, n_c) = T; an n-digit
    operand is uniform in [10**(n-1), 10**n - 1] (leading digit uniform over 1..9)."""
    task = tasks.get_task(
        "addition", base=10, operands="independent", reverse_operands=False, reverse_answer=False
    )
    t = 3
    batch, _ = bulk(task, t, "decoder", batch_size=8192, seed=5)
    pairs, leading, single = collections.Counter(), collections.Counter(), collections.Counter()
    for prompt in prompts(batch, "decoder"):
        cut = prompt.index(task.plus_id)
        a, c = prompt[:cut], prompt[cut + 1 :]
        pairs[len(a), len(c)] += 1
        for operand in (a, c):
            if len(operand) > 1:
                leading[operand[0] - S] += 1
            else:
                single[operand[0] - S] += 1
    cells = [(a, c) for a in range(1, t + 1) for c in range(1, t + 1) if max(a, c) == t]
    assert len(cells) == 2 * t - 1
    assert_uniform(pairs, cells, "operand lengths")
    assert_uniform(leading, range(1, 10), "leading digit")
    assert_uniform(single, range(10), "one-digit operand")
