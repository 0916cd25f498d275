"""Shared pieces of the synthetic tasks: vocabulary, `Batch`, the `Task` base class, layouts.

A task only generates, on device, a padded *prompt* and a padded *answer* per example (see
`Example`); this module turns them into the two published layouts:

* encoder (Deletang et al. 2023; Ruoss et al. 2023): ``x_1..x_P, EMPTY * output_length(T), PAD``;
  targets are the answer at the EMPTY slots (followed by END for tasks with a terminator).
* decoder (Kazemnejad et al. 2023): ``seq = prompt SEP answer END``; inputs ``seq[:-1]``,
  targets ``seq[1:]``; the loss covers the answer and END.

Everything is index arithmetic on [B, W] grids, so one compiled program serves every mix of
per-example lengths that fits a static width W.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax._validate import check_choice, check_positive_int

PAD = 0
EMPTY = 1
SEP = 2
END = 3
FIRST_SYMBOL = 4
LAYOUTS = ("encoder", "decoder")

# An input length: a Python int, or an int array (one length per example, maybe traced).
Length = int | jax.Array


class Batch(NamedTuple):
    """One batch of a task in either layout. W is the static sequence width.

    Attributes:
      inputs: int32 [B, W] token ids fed to the model; PAD after the sequence.
      targets: int32 [B, W] token ids to predict at each slot. encoder: the answer (then END
        for terminated tasks) at the answer slots, PAD elsewhere. decoder: ``seq[1:]``, so the
        prompt's next tokens too (outside `loss_mask`), then PAD after END.
      loss_mask: bool [B, W] slots where the loss and the accuracy are computed: the answer
        (and END where the layout has one); exact match = all masked slots correct.
      valid: bool [B, W] real tokens (True) versus padding (False): the attention padding mask.
        Positions are not carried: a batch's are arange(W) (see `pe_jax.loss.logits`).
      lengths: int32 [B] the input length T of each example (per-length metrics group by it).
    """

    inputs: jax.Array
    targets: jax.Array
    loss_mask: jax.Array
    valid: jax.Array
    lengths: jax.Array


class Example(NamedTuple):
    """What a task generates before a layout is applied (internal).

    Attributes:
      prompt: int32 [B, P] the task input; entries at or after `prompt_length` are ignored.
      prompt_length: int32 [B] number of prompt tokens of each example.
      answer: int32 [B, A] the answer; entries at or after `answer_length` are ignored.
      answer_length: int32 [B] number of answer tokens (END excluded).
    """

    prompt: jax.Array
    prompt_length: jax.Array
    answer: jax.Array
    answer_length: jax.Array


# Evaluation buckets: powers of two up to BUCKET_POWERS_UP_TO slots, then every
# BUCKET_STEP slots. Above 256 a power of two pads a sequence by up to half its width, and
# attention's cost grows with the square of the width (lengths 257..500 of the encoder protocol
# ran at 1,024 slots); steps of 64 pad by at most 63 slots, for one more program per step.
BUCKET_POWERS_UP_TO = 256
BUCKET_STEP = 64


def bucket_width(width: int, *, min_width: int = 8) -> int:
    """The padded width of a sequence of `width` tokens: the next power of two >= width up to
    `BUCKET_POWERS_UP_TO`, the next multiple of `BUCKET_STEP` above it (e.g. 300 -> 320,
    1000 -> 1024, 1030 -> 1088), and at least `min_width`.

    Evaluation pads every length to its bucket, so a grid of lengths compiles a few programs;
    the config check uses it to know the widest width an encoding must address.
    """
    width = int(width)
    if width > BUCKET_POWERS_UP_TO:
        return -(-width // BUCKET_STEP) * BUCKET_STEP
    return max(min_width, 1 << (width - 1).bit_length())


def constant_like(length: Length, value: int) -> Length:
    """Returns `value` as an int if `length` is an int, else broadcast to `length`'s shape."""
    # `length * 0 + value` keeps output_length(...) usable on ints and traced arrays alike.
    return length * 0 + value


def columns(size: int) -> jax.Array:
    """int32 [1, size] column indices, for index arithmetic against lengths[:, None]."""
    return jnp.arange(size, dtype=jnp.int32)[None, :]


def take(x: jax.Array, index: jax.Array) -> jax.Array:
    """``x[b, index[b, i]]`` with the index clipped into range; x [B, N], index [B, M]."""
    index = jnp.clip(index, 0, x.shape[1] - 1)
    return jnp.take_along_axis(x, index.astype(jnp.int32), axis=1)


def random_words(key: jax.Array, batch: int, count: int) -> jax.Array:
    """uint32 [batch, count] uniform random words: the single random draw of a sampler.

    Every `jax.random` call site adds a PRNG computation to the compiled program (and to its
    compile time), so each sampler draws all its randomness at once and derives integers from
    it with `below`.
    """
    return jax.random.bits(key, (batch, count), jnp.uint32)


def below(words: jax.Array, maxval) -> jax.Array:
    """int32 integers in [0, maxval) from uint32 `words` (maxval: int or int array, >= 1).

    A modulo of a 32-bit word: its bias, below maxval / 2**32, is negligible at task sizes.
    """
    maxval = jnp.maximum(jnp.asarray(maxval, jnp.int32), 1).astype(jnp.uint32)
    return (words % maxval).astype(jnp.int32)


def unit_interval(words: jax.Array) -> jax.Array:
    """float32 values uniform in the open interval (0, 1) from uint32 `words` (24 bits)."""
    return (words >> 8).astype(jnp.float32) * 2.0**-24 + 2.0**-25


@dataclasses.dataclass(frozen=True, kw_only=True)
class Task:
    """A synthetic sequence task with an on-device, jit-able sampler.

    Public surface: `name`, `vocab_size`, `output_length(T)`, `width(T, layout)`,
    `max_length(width, layout)` (its inverse) and `sample(...)`. Token ids shared by all
    tasks: PAD=0, EMPTY=1, SEP=2, END=3; task symbols start at FIRST_SYMBOL=4 (each task's
    docstring lists its ids and says what its length T counts).

    Subclasses are frozen (hashable) dataclasses whose fields are the task's options; they
    define `vocab_size`, `output_length`, `_generate` and, when the prompt is not exactly T
    tokens, `max_prompt_length`.

    Class attributes:
      name: the registry name.
      terminated: True when the encoder answer ends with END (variable-length answers; the
        slots after END are PAD and outside the loss, as Deletang et al. mask accuracy there).
    """

    name: ClassVar[str] = ""
    terminated: ClassVar[bool] = False

    @property
    def vocab_size(self) -> int:
        """Number of token ids, specials included."""
        raise NotImplementedError

    def output_length(self, length: Length) -> Length:
        """Number of answer slots of the encoder layout for input length T (int or int array)."""
        raise NotImplementedError

    def max_prompt_length(self, length: Length) -> Length:
        """Largest prompt (task input) length at input length T; T for most tasks."""
        return length

    def max_answer_length(self, length: Length) -> Length:
        """Largest number of answer tokens (END excluded) at input length T."""
        return self.output_length(length) - int(self.terminated)

    def _generate(self, key: jax.Array, lengths: jax.Array, max_length: int) -> Example:
        """Samples prompts and answers; lengths int32 [B] in [1, max_length] (static bound)."""
        raise NotImplementedError

    def width(self, length: int, layout: str) -> int:
        """Sequence width W that an example of input length T needs in `layout`.

        encoder: max_prompt_length(T) + output_length(T).
        decoder: max_prompt_length(T) + max_answer_length(T) + 1 (prompt, SEP, answer; END is
        only a target since inputs = seq[:-1]).

        Raises:
          ValueError: if `length` is not an int >= 1 or `layout` is not "encoder"/"decoder".
        """
        layout = check_choice("layout", layout, LAYOUTS)
        length = check_positive_int("length", length)
        if layout == "encoder":
            return int(self.max_prompt_length(length) + self.output_length(length))
        return int(self.max_prompt_length(length) + self.max_answer_length(length) + 1)

    def max_length(self, width: int, layout: str) -> int:
        """Largest input length T with ``width(T, layout) <= width``.

        Raises:
          ValueError: if `width` is too small for length 1, or `layout` is unknown.
        """
        width = check_positive_int("width", width)
        if self.width(1, layout) > width:
            raise ValueError(
                f"width={width} is too small for task {self.name!r} in the {layout} layout: "
                f"length 1 needs width {self.width(1, layout)}."
            )
        # Widths grow by at least 1 per unit of length, so the answer lies in [1, width].
        lo, hi = 1, width
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.width(mid, layout) <= width:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def sample(
        self,
        key: jax.Array,
        *,
        batch_size: int,
        length: Length,
        layout: str,
        width: int | None = None,
    ) -> Batch:
        """Samples a batch of `batch_size` examples in `layout`, padded to a static width.

        Works eagerly and under `jax.jit` (with `length` traced): the program depends only on
        (task, batch_size, layout, width), so a curriculum of lengths never recompiles.

        Args:
          key: a JAX PRNG key.
          batch_size: number of examples B.
          length: input length T: a Python int (every example) or an int array [B] (one per
            example; may be traced under jit, then `width` is required and values are clipped
            into [1, max_length(width, layout)] since they cannot be checked).
          layout: "encoder" (EMPTY answer slots, bidirectional) or "decoder" (prompt SEP answer
            END, next-token targets).
          width: static width W; defaults to ``width(max(length), layout)``.

        Returns:
          A `Batch` with [B, W] arrays (see its docstring).

        Raises:
          ValueError: naming batch_size, layout, length or width when they are invalid, when
            some length is < 1, or when the longest length does not fit `width`.
        """
        batch_size = check_positive_int("batch_size", batch_size)
        layout = check_choice("layout", layout, LAYOUTS)
        lengths, width = self._resolve_lengths(length, batch_size, layout, width)
        return _sample(self, key, lengths, layout=layout, width=width)

    def _resolve_lengths(self, length, batch_size: int, layout: str, width):
        """Checks `length` and `width`; returns (int32 [B] lengths, static width)."""
        if width is not None:
            width = check_positive_int("width", width)
        if isinstance(length, jax.core.Tracer):
            if not jnp.issubdtype(length.dtype, jnp.integer):
                raise ValueError(f"length must be an int array, got dtype {length.dtype}.")
            if width is None:
                raise ValueError("width is required when length is a traced array.")
            longest = None
        elif isinstance(length, int | np.integer) and not isinstance(length, bool):
            longest = check_positive_int("length", length)
        else:
            values = np.asarray(length)
            if not np.issubdtype(values.dtype, np.integer) or values.ndim > 1:
                raise ValueError(
                    f"length must be an int or an int array of shape [{batch_size}], "
                    f"got {type(length).__name__} with dtype {values.dtype}."
                )
            if values.ndim == 0:
                return self._resolve_lengths(int(values), batch_size, layout, width)
            if values.size and values.min() < 1:
                raise ValueError(f"length must be >= 1, got min(length)={values.min()}.")
            longest = int(values.max()) if values.size else 1
        if jnp.ndim(length) != 0 and jnp.shape(length) != (batch_size,):
            raise ValueError(
                f"length must have shape [{batch_size}] (batch_size), got {jnp.shape(length)}."
            )
        if longest is not None:
            needed = self.width(longest, layout)
            if width is None:
                width = needed
            elif needed > width:
                raise ValueError(
                    f"length {longest} of task {self.name!r} needs width {needed} in the "
                    f"{layout} layout, got width={width}."
                )
        self.max_length(width, layout)  # raises if width cannot hold length 1
        lengths = jnp.broadcast_to(jnp.asarray(length, jnp.int32), (batch_size,))
        return lengths, width


@functools.partial(jax.jit, static_argnames=("task", "layout", "width"))
def _sample(task: Task, key, lengths, *, layout: str, width: int) -> Batch:
    """The jitted body of `Task.sample`: one program per (task, B, layout, width)."""
    max_length = task.max_length(width, layout)
    lengths = jnp.clip(lengths, 1, max_length)
    example = task._generate(key, lengths, max_length)
    if layout == "encoder":
        arrays = _encoder_layout(example, task.output_length(lengths), task.terminated, width)
    else:
        arrays = _decoder_layout(example, width)
    return Batch(*arrays, lengths=lengths)


def _with_tokens(x: jax.Array, *tokens: int) -> jax.Array:
    """x [B, N] followed by constant columns `tokens`: [B, N + len(tokens)]."""
    extra = jnp.broadcast_to(jnp.array(tokens, x.dtype), (x.shape[0], len(tokens)))
    return jnp.concatenate([x, extra], axis=1)


def _encoder_layout(example: Example, num_slots, terminated: bool, width: int):
    """Prompt, then `num_slots` EMPTY answer slots, then PAD; targets at the slots."""
    # One gather per output row from [source | constant columns] keeps the program small.
    i = columns(width)
    p = example.prompt_length[:, None]
    a = example.answer_length[:, None]
    j = i - p  # index inside the answer slots
    num_p, num_a = example.prompt.shape[1], example.answer.shape[1]
    valid = i < p + num_slots[:, None]
    inputs = take(
        _with_tokens(example.prompt, EMPTY, PAD),
        jnp.where(i < p, i, jnp.where(valid, num_p, num_p + 1)),
    )
    is_answer = (j >= 0) & (j < a)
    is_end = (j == a) if terminated else jnp.zeros_like(is_answer)
    targets = take(
        _with_tokens(example.answer, END, PAD),
        jnp.where(is_answer, j, jnp.where(is_end, num_a, num_a + 1)),
    )
    return inputs, targets, is_answer | is_end, valid


def _decoder_layout(example: Example, width: int):
    """seq = prompt SEP answer END PAD..., inputs seq[:-1], targets seq[1:]."""
    i = columns(width + 1)
    p = example.prompt_length[:, None]
    a = example.answer_length[:, None]
    num_p, num_a = example.prompt.shape[1], example.answer.shape[1]
    # source = prompt | SEP | answer | END | PAD
    source = jnp.concatenate(
        [_with_tokens(example.prompt, SEP), _with_tokens(example.answer, END, PAD)], axis=1
    )
    index = jnp.where(
        i < p,
        i,
        jnp.where(
            i == p,
            num_p,
            jnp.where(
                i <= p + a,
                num_p + i - p,
                jnp.where(i == p + a + 1, num_p + 1 + num_a, num_p + 2 + num_a),
            ),
        ),
    )
    seq = take(source, index)
    i = i[:, :width]
    loss_mask = (i >= p) & (i <= p + a)
    valid = i <= p + a
    # END is only ever a target: the input row stops after the last answer token.
    return jnp.where(valid, seq[:, :-1], PAD), seq[:, 1:], loss_mask, valid
