"""Baselines from the task definition: Monte-Carlo estimates against hand-derived values."""

import numpy as np
import pytest

from pe_jax.tasks import get_task
from pe_jax.tasks._baselines import task_baselines


def _close(result, rule, metric, index, expected):
    value = result[rule][metric][index]
    se = result[rule][f"{metric}_se"][index]
    assert abs(value - expected) <= max(4 * se, 1e-9), (rule, metric, value, expected, se)


def test_reverse_binary_encoder():
    # Reverse of T iid fair bits. Uniform: 1/2 per slot, 2^-T exact. Input-blind: every slot
    # is a fair bit, so 1/2 per token; the modal answer has probability 2^-T. Majority at T=3:
    # E[max(k, 3-k)] / 3 with k ~ Bin(3, 1/2) = 0.75 per token; exact iff all bits equal: 1/4.
    r = task_baselines(get_task("reverse"), layout="encoder", lengths=[3, 6], samples=4000)
    assert r["answer_tokens"] == 2
    assert r["uniform"]["token_accuracy"] == [0.5, 0.5]
    assert r["uniform"]["exact_match"] == pytest.approx([1 / 8, 1 / 64])
    _close(r, "input_blind", "token_accuracy", 0, 0.5)
    _close(r, "input_blind", "exact_match", 0, 1 / 8)
    _close(r, "majority", "token_accuracy", 0, 0.75)
    _close(r, "majority", "exact_match", 0, 0.25)


def test_duplicate_binary_encoder_ties_go_to_one_symbol():
    # s -> s s at T=2: equal bits (prob 1/2) make the majority answer right everywhere; unequal
    # bits tie, the rule answers one fixed symbol, right on half the 4 slots: 0.75 per token,
    # exact 1/2. Input-blind: 1/2 per token, modal answer 1/4.
    r = task_baselines(get_task("duplicate"), layout="encoder", lengths=[2], samples=4000)
    _close(r, "majority", "token_accuracy", 0, 0.75)
    _close(r, "majority", "exact_match", 0, 0.5)
    _close(r, "input_blind", "token_accuracy", 0, 0.5)
    _close(r, "input_blind", "exact_match", 0, 0.25)


def test_parity_is_a_coin_without_the_input():
    r = task_baselines(get_task("parity"), layout="encoder", lengths=[5, 9], samples=4000)
    for i in range(2):
        _close(r, "input_blind", "exact_match", i, 0.5)
        _close(r, "uniform", "exact_match", i, 0.5)


def test_decoder_layout_counts_the_end_token():
    # Decoder reverse: answer T symbols then END; END is always right for the input-blind rule
    # and always wrong for the majority rule (which answers a symbol).
    task = get_task("reverse")
    r = task_baselines(task, layout="decoder", lengths=[4], samples=2000)
    n_symbols = r["answer_tokens"] - 1  # the answer tokens are the symbols and END
    _close(r, "input_blind", "token_accuracy", 0, (4 / n_symbols + 1) / 5)
    assert r["majority"]["token_accuracy"][0] <= 4 / 5


def test_bad_arguments():
    with pytest.raises(ValueError, match="layout"):
        task_baselines(get_task("reverse"), layout="middle", lengths=[3])
    with pytest.raises(ValueError, match="samples"):
        task_baselines(get_task("reverse"), layout="encoder", lengths=[3], samples=2)
    assert np.isfinite(
        task_baselines(get_task("sort"), layout="encoder", lengths=[1], samples=8)["majority"][
            "token_accuracy"
        ][0]
    )
