"""Sequence-manipulation tasks: copy, reverse, duplicate, sort, odds_first, missing_duplicate.

For these tasks the length T is the number of input symbols. Each task draws the symbols of
the longest example the width allows, [B, max_length], and builds every example's prompt and
answer by index arithmetic on its own T (no loop over examples).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from pe_jax._validate import check_choice, check_int
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
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SymbolTask(Task):
    """A task over an alphabet of `num_symbols` symbols with ids FIRST_SYMBOL + s."""

    num_symbols: int = 2

    def __post_init__(self):
        check_int("num_symbols", self.num_symbols, minimum=2)

    @property
    def vocab_size(self) -> int:
        return FIRST_SYMBOL + self.num_symbols

    @property
    def symbols(self) -> tuple[int, ...]:
        """Token ids of the task's symbols, in symbol order."""
        return tuple(range(FIRST_SYMBOL, FIRST_SYMBOL + self.num_symbols))

    def _draw(self, key: jax.Array, batch: int, count: int) -> jax.Array:
        """Uniform i.i.d. symbol ids, int32 [batch, count]."""
        return self._to_symbols(random_words(key, batch, count))

    def _to_symbols(self, words: jax.Array) -> jax.Array:
        return below(words, self.num_symbols) + FIRST_SYMBOL


@dataclasses.dataclass(frozen=True, kw_only=True)
class Copy(SymbolTask):
    """Copy the input: x_1..x_T -> x_1..x_T (Kazemnejad et al. 2023).

    Vocabulary: PAD=0, EMPTY=1, SEP=2, END=3, symbols 4..4+num_symbols-1 (vocab_size
    4 + num_symbols). Output length T. Prompt = the T symbols.

    Options:
      variant: "random" (i.i.d. uniform symbols; the hard copy; Kazemnejad et al. used 100
        distinct tokens, i.e. num_symbols=100) or "repeat" (one uniform symbol repeated T
        times; the paper's headline copy task).
      num_symbols: alphabet size (>= 2), default 2.
    """

    name = "copy"
    variant: str = "random"

    def __post_init__(self):
        super().__post_init__()
        check_choice("variant", self.variant, ("random", "repeat"))

    def output_length(self, length: Length) -> Length:
        return length

    def _generate(self, key, lengths, max_length):
        batch = lengths.shape[0]
        if self.variant == "repeat":
            x = jnp.broadcast_to(self._draw(key, batch, 1), (batch, max_length))
        else:
            x = self._draw(key, batch, max_length)
        return Example(x, lengths, x, lengths)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Reverse(SymbolTask):
    """Reverse the input: x_1..x_T -> x_T..x_1 (Deletang et al. 2023, binary).

    Vocabulary: PAD=0, EMPTY=1, SEP=2, END=3, symbols 4..4+num_symbols-1. Output length T.
    """

    name = "reverse"

    def output_length(self, length: Length) -> Length:
        return length

    def _generate(self, key, lengths, max_length):
        x = self._draw(key, lengths.shape[0], max_length)
        col = columns(max_length)
        return Example(x, lengths, take(x, lengths[:, None] - 1 - col), lengths)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Duplicate(SymbolTask):
    """Duplicate the input: s -> s s (Deletang et al. 2023, binary).

    Vocabulary: PAD=0, EMPTY=1, SEP=2, END=3, symbols 4..4+num_symbols-1. Output length 2T.
    """

    name = "duplicate"

    def output_length(self, length: Length) -> Length:
        return 2 * length

    def _generate(self, key, lengths, max_length):
        x = self._draw(key, lengths.shape[0], max_length)
        col = columns(2 * max_length)
        t = lengths[:, None]
        return Example(x, lengths, take(x, jnp.where(col < t, col, col - t)), 2 * lengths)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sort(SymbolTask):
    """Sort the input symbols in increasing id order (Deletang et al. 2023 "bucket sort").

    Vocabulary: PAD=0, EMPTY=1, SEP=2, END=3, symbols 4..4+num_symbols-1; num_symbols
    defaults to 5 as in the encoder protocol. Output length T.
    """

    name = "sort"
    num_symbols: int = 5

    def output_length(self, length: Length) -> Length:
        return length

    def _generate(self, key, lengths, max_length):
        x = self._draw(key, lengths.shape[0], max_length)
        col = columns(max_length)
        # Padding sorts after every symbol, so the first T entries are the sorted example.
        answer = jnp.sort(jnp.where(col < lengths[:, None], x, self.vocab_size), axis=1)
        return Example(x, lengths, answer, lengths)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OddsFirst(SymbolTask):
    """Symbols at odd positions, then those at even ones (Deletang et al. 2023, binary).

    With 1-based positions, x_1..x_T -> x_1 x_3 x_5 .. x_2 x_4 .. as in the paper's
    definition and examples (00110101 -> 0100 0111); their released sampler emits the other
    half first, which is equally hard. Vocabulary: PAD=0, EMPTY=1, SEP=2, END=3, symbols
    4..4+num_symbols-1. Output length T.
    """

    name = "odds_first"

    def output_length(self, length: Length) -> Length:
        return length

    def _generate(self, key, lengths, max_length):
        x = self._draw(key, lengths.shape[0], max_length)
        col = columns(max_length)
        num_odd = (lengths[:, None] + 1) // 2  # 1-based odd positions = 0-based even ones
        index = jnp.where(col < num_odd, 2 * col, 2 * (col - num_odd) + 1)
        return Example(x, lengths, take(x, index), lengths)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MissingDuplicate(SymbolTask):
    """Find the masked symbol of a duplicated string (Deletang et al. 2023, binary).

    A string s of length h = T // 2 is written twice, s s, with one uniformly chosen symbol
    replaced by MISSING; when T is odd a FILL token ends the input, so the input has exactly
    T tokens. The answer is the replaced symbol. At T = 1 there is no string to duplicate: as
    in Deletang et al.'s released sampler, the input is symbol 1 and the answer is symbol 1.

    Vocabulary: PAD=0, EMPTY=1, SEP=2, END=3, symbols 4..4+n-1 (n = num_symbols),
    MISSING = 4+n, FILL = 4+n+1; vocab_size 4+n+2. Output length 1.
    """

    name = "missing_duplicate"

    @property
    def vocab_size(self) -> int:
        return FIRST_SYMBOL + self.num_symbols + 2

    @property
    def missing_id(self) -> int:
        """Token id that masks the symbol to recover."""
        return FIRST_SYMBOL + self.num_symbols

    @property
    def fill_id(self) -> int:
        """Token id closing inputs of odd length."""
        return FIRST_SYMBOL + self.num_symbols + 1

    def output_length(self, length: Length) -> Length:
        return constant_like(length, 1)

    def _generate(self, key, lengths, max_length):
        batch = lengths.shape[0]
        num_half = max(max_length // 2, 1)
        words = random_words(key, batch, num_half + 1)
        x = self._to_symbols(words[:, :num_half])
        half = (lengths // 2)[:, None]
        col = columns(max_length)
        doubled = take(x, jnp.where(col < half, col, col - half))
        missing = below(words[:, num_half:], 2 * half)
        prompt = jnp.where(
            col == missing, self.missing_id, jnp.where(col < 2 * half, doubled, self.fill_id)
        )
        answer = take(doubled, missing)
        symbol_one = FIRST_SYMBOL + 1
        short = (lengths == 1)[:, None]
        prompt = jnp.where(short, symbol_one, prompt)
        answer = jnp.where(short, symbol_one, answer)
        return Example(prompt, lengths, answer, jnp.ones_like(lengths))
