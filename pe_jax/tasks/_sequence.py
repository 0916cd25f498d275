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
      variant: "random" (i.i.d. uniform symbols; the hard copy) or "repeat" (one symbol,
        uniform over the alphabet, repeated T times; the paper's headline copy task).
      num_symbols: alphabet size (>= 2), default 2 (a laptop default, not theirs).

    Kazemnejad et al.'s generator (McGill-NLP/length-generalization,
    scripts/dataset_builders/make_copy_dataset.py): "random" draws uniformly from the first
    100 tokens of their single-token list (num_symbols=100); "repeat" gives each example of a
    length bin a different token of that list, as many tokens as examples per bin (thousands
    for their training set), so which token is copied matters, not only how many: use
    num_symbols >= 100 for it, never the binary default.
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
    """Reverse the input: x_1..x_T -> x_T..x_1 (Deletang et al. 2023; Kazemnejad et al. 2023).

    Options:
      variant: "single" (x_T..x_1; output length T) or "2x" (x_T..x_1 NEXT x_T..x_1: the
        reversed string twice around a NEXT token; output length 2T + 1), Kazemnejad et
        al.'s "multi_char_2x" reverse, whose target is the reversed tokens, " [NEXT] ", and
        the reversed tokens again (McGill-NLP/length-generalization,
        scripts/dataset_builders/make_reverse_dataset.py).
      num_symbols: alphabet size (>= 2), default 2 as in Deletang et al.
        (tasks/dcf/reverse_string.py); Kazemnejad et al. draw uniformly from 100 tokens.

    Vocabulary: PAD=0, EMPTY=1, SEP=2, END=3, symbols 4..4+n-1 (n = num_symbols); "2x" adds
    NEXT = 4+n. vocab_size 4+n ("single") or 5+n ("2x").
    """

    name = "reverse"
    variant: str = "single"

    def __post_init__(self):
        super().__post_init__()
        check_choice("variant", self.variant, ("single", "2x"))

    @property
    def vocab_size(self) -> int:
        return FIRST_SYMBOL + self.num_symbols + (self.variant == "2x")

    @property
    def next_id(self) -> int:
        """Token id between the two reversed copies of the "2x" variant."""
        return FIRST_SYMBOL + self.num_symbols

    def output_length(self, length: Length) -> Length:
        return 2 * length + 1 if self.variant == "2x" else length

    def _generate(self, key, lengths, max_length):
        x = self._draw(key, lengths.shape[0], max_length)
        t = lengths[:, None]
        if self.variant == "single":
            return Example(x, lengths, take(x, t - 1 - columns(max_length)), lengths)
        col = columns(2 * max_length + 1)
        # Column T is NEXT; column j > T repeats column j - T - 1 of the first copy.
        first = take(x, jnp.where(col < t, t - 1 - col, 2 * t - col))
        answer = jnp.where(col == t, self.next_id, first)
        return Example(x, lengths, answer, 2 * lengths + 1)


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
    defaults to 5 as in the encoder protocol (tasks/cs/bucket_sort.py: uniform symbols of a
    5-symbol alphabet, sorted; output length T). Kazemnejad et al.'s single-token sort
    draws uniformly from 50 tokens and sorts them by their rank in the token list
    (make_sort_dataset.py, generate_data_single_digit): num_symbols=50. Output length T.
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
    """Half of the symbols by position parity, then the other half (Deletang et al. 2023).

    Options:
      order: "released" (default): x_2 x_4 x_6 .. x_1 x_3 .. (1-based positions), what
        Deletang et al.'s released sampler emits (tasks/cs/odds_first.py concatenates the
        0-based odd indices, then the even ones), so what their published numbers measured;
        "paper": x_1 x_3 x_5 .. x_2 x_4 .., their docstring's and paper's definition
        (00110101 -> 0100 0111). Both are equally hard.
      num_symbols: alphabet size (>= 2), default 2 as in the paper.

    Vocabulary: PAD=0, EMPTY=1, SEP=2, END=3, symbols 4..4+num_symbols-1. Output length T.
    """

    name = "odds_first"
    order: str = "released"

    def __post_init__(self):
        super().__post_init__()
        check_choice("order", self.order, ("released", "paper"))

    def output_length(self, length: Length) -> Length:
        return length

    def _generate(self, key, lengths, max_length):
        x = self._draw(key, lengths.shape[0], max_length)
        col = columns(max_length)
        t = lengths[:, None]
        # 0-based index parity emitted first, and how many indices have it.
        first = 1 if self.order == "released" else 0
        num_first = (t + 1 - first) // 2
        index = jnp.where(col < num_first, 2 * col + first, 2 * (col - num_first) + 1 - first)
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
