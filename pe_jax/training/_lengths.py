"""Which input length a training step uses under per-batch sampling, and its padded width.

The encoder protocol's official trainer (google-deepmind/randomized_positional_encodings,
experiments/training.py) draws one length per step and samples the whole batch at it. Here the
length of step t is drawn from ``fold_in(key(LENGTH_SALT), t)`` alone: not from the seeds, so a
seed trained alone sees the lengths it sees beside other seeds, and not from the run's history,
so a resumed run draws the lengths of an uninterrupted one. Each step then runs the program of
its length's bucket: the width the length needs, rounded up to a multiple of `bucket_multiple`
and capped at the training width, so a run compiles one program per bucket it uses.

Finer buckets waste fewer slots a step but compile more programs. `bucket_multiple=0` ("auto",
`choose_bucket_multiple`) weighs the two from the run's planned model-steps (steps x models),
in units of one model-step at the training width W:
- a step at width w costs FIXED_STEP_SHARE + (1 - FIXED_STEP_SHARE) f(w) / f(W), with
  f(w) = w + w**2 / STEP_COST_WIDTH (the width-dependent part: the fit t(w) = 2.5e-3 w +
  9.5e-5 w**2 s of the reference encoder step on this project's CPU, whose linear and
  quadratic terms balance at w ~ 26) and a share that does not depend on the width (the
  optimizer update, the sampler, the program's launch);
- one program's compilation costs COMPILE_MODEL_STEPS.
Both constants come from one measurement on this project's 2-core CPU (2026-12-08, reference
model, rope, 2 models in a program, under background load: `python -m experiments.throughput
--lever=buckets --models=2 --rounds=2 --steps=20`): exact widths took 0.969 CPU s a step
against 1.063 in buckets of 16 (9% less, where f alone predicts 19%: hence a fixed share of
0.35), and the 22 extra programs ~17 CPU s each, ~34 model-steps of 0.53 CPU s.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax.tasks import Task

LENGTH_SAMPLINGS = ("per_batch", "per_example")
# Candidate multiples of "auto", finest first; a tie goes to the coarser (fewer programs).
BUCKET_MULTIPLES = (1, 2, 4, 8, 16, 32)
# The step cost model of "auto" (see the module docstring for the measurement).
STEP_COST_WIDTH = 26.0  # width at which a step's linear and quadratic costs are equal
FIXED_STEP_SHARE = 0.35  # the share of a step at the training width that no width changes
COMPILE_MODEL_STEPS = 34.0  # one training program's compilation, in model-steps at width W
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


def choose_bucket_multiple(
    task: Task,
    layout: str,
    *,
    min_length: int,
    max_length: int,
    cap: int,
    model_steps: int,
    compile_model_steps: float = COMPILE_MODEL_STEPS,
) -> int:
    """The multiple of `BUCKET_MULTIPLES` with the least predicted cost for a run of
    `model_steps` model-steps (steps x models) with lengths uniform over [min_length,
    max_length]: its programs' compilations plus its steps' expected cost, both in model-steps
    at the training width `cap` (see the module docstring)."""

    def f(width: int) -> float:
        return width + width * width / STEP_COST_WIDTH

    def cost(width: int) -> float:  # one model-step at `width`, in model-steps at `cap`
        return FIXED_STEP_SHARE + (1 - FIXED_STEP_SHARE) * f(width) / f(cap)

    lengths = range(min_length, max_length + 1)
    best, best_cost = None, math.inf
    for multiple in reversed(BUCKET_MULTIPLES):  # coarsest first: a tie keeps the coarser
        widths = [bucket_for(task, t, layout, multiple=multiple, cap=cap) for t in lengths]
        steps_cost = model_steps * sum(cost(w) for w in widths) / len(widths)
        total = len(set(widths)) * compile_model_steps + steps_cost
        if total < best_cost:
            best, best_cost = multiple, total
    return best
