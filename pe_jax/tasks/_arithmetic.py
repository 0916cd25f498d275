"""Arithmetic tasks: addition (Deletang et al. 2023 and Kazemnejad et al. 2023) and parity.

Numbers live on device as little-endian digit arrays [B, max_length] (digit k has weight
base**k, zeros above the number's length); sums are computed with a carry scan, so operands of
any length are exact (no integer overflow).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from pe_jax._validate import check_bool, check_choice
from pe_jax.tasks._base import (
    FIRST_SYMBOL,
    PAD,
    Example,
    Length,
    Task,
    below,
    columns,
    constant_like,
    random_words,
    take,
    unit_interval,
)
from pe_jax.tasks._sequence import SymbolTask


@dataclasses.dataclass(frozen=True, kw_only=True)
class Addition(Task):
    """Add two numbers written in base `base`; the answer is the sum, then END.

    What "length" T means depends on `operands`:

    * "split" (Deletang et al. 2023, the encoder protocol): T is the number of input tokens,
      ``a + c`` with a '+' token, so the two operands share a budget of T - 1 digits: the
      length n_a of a is uniform in [1, T - 2] and n_c = T - 1 - n_a. Each operand is uniform
      in [1, base**n - 1] and written with exactly n digits (zero padded). For T <= 2 there is
      no room for '+': the input is one number of T digits, uniform in [0, base**T - 1], and
      the answer is that number (tasks/cs/binary_addition.py draws it with an exclusive upper
      bound of 2**T - 1, so never 2**T - 1 and always 0 at T = 1; the full range is kept
      here). Output length T + 1 (the sum has at most T digits, + END).
    * "independent" (Kazemnejad et al. 2023, the decoder protocol): T is the number of digits
      of the longer operand. The pair (n_a, n_c) is uniform over the 2T - 1 pairs with
      max(n_a, n_c) = T, and an n-digit operand is uniform in [base**(n-1), base**n - 1]
      ([0, base - 1] when n = 1), as in their data. The input has n_a + 1 + n_c <= 2T + 1
      tokens. Their generator (McGill-NLP/length-generalization,
      scripts/dataset_builders/make_addition_dataset.py) fills every (n_a, n_c) bin of
      [1, n]^2 with the same number of examples, so their T is distributed as (2T - 1) / n**2;
      the trainer here draws T uniformly from [min_length, max_length] instead, so short
      sums are more frequent in training (T = 1: 1/n, theirs 1/n**2). Within one T the pair
      distribution is theirs, and so is every evaluated length: their test bins (one operand
      of n+1..2n digits, the other of 1..2n) hold, for each longer-operand length T, the same
      uniform mix of the 2T - 1 pairs. Output length T + 2 (at most T + 1 digits, + END).

    The answer is the sum without leading zeros (at least one digit) followed by END; the
    encoder slots after END are PAD and outside the loss (Deletang et al. train on zeros
    there but mask their accuracy after the terminator; we use that mask for both).

    Vocabulary: PAD=0, EMPTY=1, SEP=2, END=3, digits 4..4+base-1 (digit d is 4+d),
    PLUS = 4+base; vocab_size 5+base.

    Options:
      base: 2 (default) or 10.
      operands: "split" (default) or "independent", as above.
      reverse_operands: write operands least significant digit first (default True, Deletang).
      reverse_answer: write the sum least significant digit first (default True, Deletang).
        Kazemnejad et al.: base=10, operands="independent", both False.
    """

    name = "addition"
    terminated = True
    base: int = 2
    operands: str = "split"
    reverse_operands: bool = True
    reverse_answer: bool = True

    def __post_init__(self):
        check_choice("base", self.base, (2, 10))
        check_choice("operands", self.operands, ("split", "independent"))
        check_bool("reverse_operands", self.reverse_operands)
        check_bool("reverse_answer", self.reverse_answer)

    @property
    def vocab_size(self) -> int:
        return FIRST_SYMBOL + self.base + 1

    @property
    def symbols(self) -> tuple[int, ...]:
        """Token ids of the digits 0..base-1."""
        return tuple(range(FIRST_SYMBOL, FIRST_SYMBOL + self.base))

    @property
    def plus_id(self) -> int:
        """Token id of '+'."""
        return FIRST_SYMBOL + self.base

    def output_length(self, length: Length) -> Length:
        return length + (1 if self.operands == "split" else 2)

    def max_prompt_length(self, length: Length) -> Length:
        return length if self.operands == "split" else 2 * length + 1

    def _digits(self, words, num_digits, top, force_top):
        """Little-endian digits [B, size] from words [B, size + 1]: uniform below `top`.

        The digit at `top` is drawn from [1, base) where `force_top`, else from [0, base);
        digits above `top` or at or above `num_digits` are zero.
        """
        size = words.shape[1] - 1
        col = columns(size)
        digits = below(words[:, :size], self.base)
        leading = 1 + below(words[:, size:], self.base - 1)
        digits = jnp.where((col == top[:, None]) & force_top[:, None], leading, digits)
        return jnp.where((col <= top[:, None]) & (col < num_digits[:, None]), digits, 0)

    def _nonzero_top(self, words, num_digits):
        """Index of the highest non-zero digit of a number uniform in [1, base**n - 1].

        (base - 1) * base**k numbers have their highest non-zero digit at k < n, so
        g = n - 1 - top is geometric with ratio 1/base truncated to [0, n - 1]; it is drawn by
        inverting its CDF, P(g <= m) = (1 - base**-(m+1)) / (1 - base**-n).
        """
        log_base = math.log(self.base)
        n = jnp.maximum(num_digits, 1)
        mass = -jnp.expm1(-n.astype(jnp.float32) * log_base)  # 1 - base**-n
        g = jnp.floor(-jnp.log1p(-unit_interval(words) * mass) / log_base).astype(jnp.int32)
        return n - 1 - jnp.clip(g, 0, n - 1)

    def _operand_lengths(self, words, lengths):
        if self.operands == "split":
            has_plus = lengths >= 3
            n_a = jnp.where(has_plus, 1 + below(words, lengths - 2), lengths)
            n_c = jnp.where(has_plus, lengths - 1 - n_a, 0)
        else:
            pair = below(words, 2 * lengths - 1)
            n_a = jnp.where(pair < lengths, lengths, pair - lengths + 1)
            n_c = jnp.where(pair < lengths, pair + 1, lengths)
        return n_a, n_c

    def _generate(self, key, lengths, max_length):
        size = max_length
        # Columns: digits of a (size + 1 with the leading digit), of c, operand split, tops.
        words = random_words(key, lengths.shape[0], 2 * size + 5)
        words_a, words_c = words[:, : size + 1], words[:, size + 1 : 2 * size + 2]
        n_a, n_c = self._operand_lengths(words[:, -3], lengths)
        if self.operands == "split":
            has_plus = lengths >= 3
            top_a = jnp.where(has_plus, self._nonzero_top(words[:, -2], n_a), n_a - 1)
            top_c = self._nonzero_top(words[:, -1], n_c)
            a = self._digits(words_a, n_a, top_a, has_plus)
            c = self._digits(words_c, n_c, top_c, has_plus)
        else:
            a = self._digits(words_a, n_a, n_a - 1, n_a > 1)
            c = self._digits(words_c, n_c, n_c - 1, n_c > 1)

        def add_column(carry, column):
            total = column[0] + column[1] + carry
            return total // self.base, total % self.base

        carry, sum_digits = jax.lax.scan(add_column, jnp.zeros_like(lengths), (a.T, c.T))
        total = jnp.concatenate([sum_digits.T, carry[:, None]], axis=1)  # [B, max_length + 1]
        k = columns(max_length + 1)
        num_sum = jnp.max(jnp.where(total != 0, k + 1, 1), axis=1)
        answer_index = k if self.reverse_answer else num_sum[:, None] - 1 - k
        answer = take(total, answer_index) + FIRST_SYMBOL

        width = self.max_prompt_length(max_length)
        j = columns(width)
        na, nc = n_a[:, None], n_c[:, None]
        index_a = j if self.reverse_operands else na - 1 - j
        jc = j - na - 1  # index inside the second operand
        index_c = jc if self.reverse_operands else nc - 1 - jc
        prompt = jnp.where(
            j < na,
            take(a, index_a) + FIRST_SYMBOL,
            jnp.where(
                (j == na) & (nc > 0),
                self.plus_id,
                jnp.where(jc < nc, take(c, index_c) + FIRST_SYMBOL, PAD),
            ),
        )
        prompt_length = n_a + jnp.where(n_c > 0, n_c + 1, 0)
        return Example(prompt, prompt_length, answer, num_sum)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Parity(SymbolTask):
    """Parity of the input: the sum of the symbol values mod 2 (Deletang et al. 2023).

    With the default binary alphabet this is the parity of the number of 1s. The answer is
    one symbol: symbol 0 (id 4) for even, symbol 1 (id 5) for odd. Vocabulary: PAD=0,
    EMPTY=1, SEP=2, END=3, symbols 4..4+num_symbols-1. Output length 1.
    """

    name = "parity"

    def output_length(self, length: Length) -> Length:
        return constant_like(length, 1)

    def _generate(self, key, lengths, max_length):
        x = self._draw(key, lengths.shape[0], max_length)
        values = jnp.where(columns(max_length) < lengths[:, None], x - FIRST_SYMBOL, 0)
        answer = jnp.sum(values, axis=1, keepdims=True) % 2 + FIRST_SYMBOL
        return Example(x, lengths, answer, jnp.ones_like(lengths))
