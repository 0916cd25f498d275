"""Content-addressed recall tasks: selective copy, associative recall, flip-flop.

These are the tasks on which position must be counted in units of *some* tokens (CoPE,
Golovneva et al. 2024), rather than in raw token offsets.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from pe_jax._validate import check_int
from pe_jax.tasks._base import (
    FIRST_SYMBOL,
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
class SelectiveCopy(SymbolTask):
    """Copy the symbols of the input in order, skipping BLANK tokens (Gu & Dao 2023).

    T is the number of symbols to copy. They are scattered, in order, over an input of
    ``(1 + blanks_per_symbol) * T`` tokens whose other tokens are BLANK; the positions of the
    symbols are a uniformly random subset. ``blanks_per_symbol=1`` is the equal blank/symbol
    mix of CoPE's in-distribution split (other values give its dense and sparse splits).

    Vocabulary: PAD=0, EMPTY=1, SEP=2, END=3, symbols 4..4+n-1 (n = num_symbols),
    BLANK = 4+n; vocab_size 5+n. Output length T.

    Options:
      num_symbols: alphabet size (>= 2), default 2.
      blanks_per_symbol: BLANK tokens per symbol (int >= 0), default 1.
    """

    name = "selective_copy"
    blanks_per_symbol: int = 1

    def __post_init__(self):
        super().__post_init__()
        value = self.blanks_per_symbol
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"blanks_per_symbol must be an integer >= 0, got {value!r}.")

    @property
    def vocab_size(self) -> int:
        return FIRST_SYMBOL + self.num_symbols + 1

    @property
    def blank_id(self) -> int:
        """Token id of BLANK."""
        return FIRST_SYMBOL + self.num_symbols

    def output_length(self, length: Length) -> Length:
        return length

    def max_prompt_length(self, length: Length) -> Length:
        return (1 + self.blanks_per_symbol) * length

    def _generate(self, key, lengths, max_length):
        batch = lengths.shape[0]
        size = self.max_prompt_length(max_length)
        words = random_words(key, batch, size + max_length)
        x = self._to_symbols(words[:, size:])
        col = columns(size)
        prompt_length = self.max_prompt_length(lengths)
        # The T positions with the smallest random scores hold the symbols: a uniform subset.
        scores = jnp.where(col < prompt_length[:, None], words[:, :size], jnp.uint32(2**32 - 1))
        rank = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)
        is_symbol = rank < lengths[:, None]
        ordinal = jnp.cumsum(is_symbol, axis=1) - 1
        prompt = jnp.where(is_symbol, take(x, ordinal), self.blank_id)
        return Example(prompt, prompt_length, x, lengths)


class _PairsThenQuery(Task):
    """A task whose input is T two-token items then one query token (2T + 1 tokens) and whose
    answer is one token."""

    def output_length(self, length: Length) -> Length:
        return constant_like(length, 1)

    def max_prompt_length(self, length: Length) -> Length:
        return 2 * length + 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class AssociativeRecall(_PairsThenQuery):
    """Recall the value bound to a queried key (Ba et al. 2016; Zoology, Arora et al. 2023).

    The input is T key-value pairs then a query key: ``k_1 v_1 .. k_T v_T q`` (2T + 1 tokens).
    Keys and values are uniform with replacement; q is the key of a uniformly chosen pair, and
    the answer is the value of the *last* pair with key q (later bindings overwrite earlier
    ones, so every T works with a small key vocabulary).

    Vocabulary: PAD=0, EMPTY=1, SEP=2, END=3, keys 4..4+K-1, values 4+K..4+K+V-1
    (K = num_keys, V = num_values); vocab_size 4+K+V. Output length 1.
    """

    name = "associative_recall"
    num_keys: int = 8
    num_values: int = 8

    def __post_init__(self):
        check_int("num_keys", self.num_keys, minimum=2)
        check_int("num_values", self.num_values, minimum=2)

    @property
    def vocab_size(self) -> int:
        return FIRST_SYMBOL + self.num_keys + self.num_values

    @property
    def key_ids(self) -> tuple[int, ...]:
        """Token ids of the keys."""
        return tuple(range(FIRST_SYMBOL, FIRST_SYMBOL + self.num_keys))

    @property
    def value_ids(self) -> tuple[int, ...]:
        """Token ids of the values."""
        start = FIRST_SYMBOL + self.num_keys
        return tuple(range(start, start + self.num_values))

    def _generate(self, key, lengths, max_length):
        batch, n = lengths.shape[0], max_length
        words = random_words(key, batch, 2 * n + 1)
        keys = below(words[:, :n], self.num_keys) + FIRST_SYMBOL
        values = below(words[:, n : 2 * n], self.num_values) + FIRST_SYMBOL + self.num_keys
        t = lengths[:, None]
        query = take(keys, below(words[:, 2 * n :], t))
        col = columns(n)
        last = jnp.max(jnp.where((keys == query) & (col < t), col, -1), axis=1, keepdims=True)
        j = columns(2 * n + 1)
        pairs = jnp.where(j % 2 == 0, take(keys, j // 2), take(values, j // 2))
        prompt = jnp.where(j < 2 * t, pairs, query)
        return Example(prompt, 2 * lengths + 1, take(values, last), jnp.ones_like(lengths))


@dataclasses.dataclass(frozen=True, kw_only=True)
class FlipFlop(_PairsThenQuery):
    """Flip-flop language (Liu et al. 2023): read back the last written bit.

    The input is T instruction-bit pairs then a final read: ``w b  op b .. op b  r``
    (2T + 1 tokens). The first instruction is a write; each later one is ignore with
    probability `p_ignore`, else write or read with equal probability. Written and ignored
    bits are uniform; a read's bit is the last written bit (as in the language's definition).
    The answer is the bit that the final read returns.

    Vocabulary: PAD=0, EMPTY=1, SEP=2, END=3, bits 0/1 = 4/5, WRITE=6, READ=7, IGNORE=8;
    vocab_size 9. Output length 1.

    Options:
      p_ignore: probability of an ignore instruction, in [0, 1); default 0.8 (FFL(0.8)).
    """

    name = "flip_flop"
    p_ignore: float = 0.8

    write_id: ClassVar[int] = FIRST_SYMBOL + 2
    read_id: ClassVar[int] = FIRST_SYMBOL + 3
    ignore_id: ClassVar[int] = FIRST_SYMBOL + 4

    def __post_init__(self):
        value = self.p_ignore
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise ValueError(f"p_ignore must be a number in [0, 1), got {value!r}.")

    @property
    def vocab_size(self) -> int:
        return FIRST_SYMBOL + 5

    @property
    def symbols(self) -> tuple[int, ...]:
        """Token ids of the bits 0 and 1."""
        return (FIRST_SYMBOL, FIRST_SYMBOL + 1)

    def _generate(self, key, lengths, max_length):
        batch, n = lengths.shape[0], max_length
        words = random_words(key, batch, 2 * n)
        col = columns(n)
        u = unit_interval(words[:, :n])
        p_write = self.p_ignore + (1.0 - self.p_ignore) / 2
        op = jnp.where(
            u < self.p_ignore, self.ignore_id, jnp.where(u < p_write, self.write_id, self.read_id)
        )
        op = jnp.where(col == 0, self.write_id, op)
        last_write = jax.lax.cummax(jnp.where(op == self.write_id, col, 0), axis=1)
        drawn = below(words[:, n:], 2) + FIRST_SYMBOL
        bits = jnp.where(op == self.read_id, take(drawn, last_write), drawn)
        t = lengths[:, None]
        answer = take(drawn, take(last_write, t - 1))
        j = columns(2 * n + 1)
        pairs = jnp.where(j % 2 == 0, take(op, j // 2), take(bits, j // 2))
        prompt = jnp.where(j < 2 * t, pairs, self.read_id)
        return Example(prompt, 2 * lengths + 1, answer, jnp.ones_like(lengths))
