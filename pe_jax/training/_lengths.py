"""Which input length a training step uses under per-batch sampling, and its padded width.

The encoder protocol's official trainer (google-deepmind/randomized_positional_encodings,
experiments/training.py) draws one length per step and samples the whole batch at it. Here the
length of step t is drawn from ``fold_in(key(LENGTH_SALT), t)`` alone: not from the seeds, so a
seed trained alone sees the lengths it sees beside other seeds, and not from the run's history,
so a resumed run draws the lengths of an uninterrupted one. Each step then runs the program of
its length's bucket: the width the length needs, rounded up to a multiple of `bucket_multiple`
and capped at the training width, so a run compiles one program per bucket it uses.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax.tasks import Task

LENGTH_SAMPLINGS = ("per_batch", "per_example")
# Fixed, so that the lengths of a step never depend on the seeds or on the run.
LENGTH_SALT = 0x1E6
# Lengths are drawn CHUNK steps at a time, on chunk boundaries: a step's length is the same
# whichever step the run starts or resumes at.
CHUNK = 4096


def default_length_sampling(protocol: str) -> str:
    """The default of config.train.length_sampling: per_batch for the encoder protocol."""
    return "per_batch" if protocol == "encoder" else "per_example"


@functools.partial(jax.jit, static_argnames=("min_length", "max_length"))
def _draw(steps: jax.Array, *, min_length: int, max_length: int) -> jax.Array:
    key = jax.random.key(LENGTH_SALT)
    one = lambda t: jax.random.randint(  # noqa: E731
        jax.random.fold_in(key, t), (), min_length, max_length + 1
    )
    return jax.vmap(one)(steps)


def step_lengths(steps, *, min_length: int, max_length: int) -> np.ndarray:
    """int32 [n] the input length of each of `steps` [n]: uniform over [min_length, max_length].

    The length of step t is ``randint(fold_in(key(LENGTH_SALT), t), min_length, max_length)``,
    a function of t alone.
    """
    # Concrete even when first asked inside a trace (e.g. jax.make_jaxpr of the step).
    with jax.ensure_compile_time_eval():
        steps = jnp.asarray(np.asarray(steps, np.int32))
        return np.asarray(_draw(steps, min_length=min_length, max_length=max_length))


def bucket_for(task: Task, length: int, layout: str, *, multiple: int, cap: int) -> int:
    """The width a batch of input length `length` runs at: ``task.width(length, layout)``
    rounded up to a multiple of `multiple`, at most `cap` (the training width)."""
    width = task.width(int(length), layout)
    return min(-(-width // multiple) * multiple, cap)


class LengthSchedule:
    """The length and bucket width of every step of a run, drawn lazily CHUNK steps at a time.

    Args:
      task, layout: what the run trains.
      min_length, max_length: the training lengths (uniform over both ends).
      multiple: widths are rounded up to a multiple of it (config train.bucket_multiple).
      cap: the training width, the widest bucket.
    """

    def __init__(
        self, task: Task, layout: str, *, min_length: int, max_length: int, multiple: int, cap: int
    ):
        self._task, self._layout = task, layout
        self._range = (min_length, max_length)
        self._multiple, self._cap = multiple, cap
        self._chunks: dict[int, np.ndarray] = {}

    def length(self, step: int) -> int:
        """The input length of every example of step `step`."""
        chunk, offset = divmod(int(step), CHUNK)
        if chunk not in self._chunks:
            lo, hi = self._range
            steps = np.arange(chunk * CHUNK, (chunk + 1) * CHUNK)
            self._chunks[chunk] = step_lengths(steps, min_length=lo, max_length=hi)
        return int(self._chunks[chunk][offset])

    def width(self, step: int) -> int:
        """The bucket width that step `step` runs at."""
        return bucket_for(
            self._task,
            self.length(step),
            self._layout,
            multiple=self._multiple,
            cap=self._cap,
        )
