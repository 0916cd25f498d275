"""The training step as a pure function of (state, model keys, step), over a models axis.

One call trains M = S x R independent models (every seed at every learning rate, see
`pe_jax.training._gate`) in one compiled program: the state's leaves carry a leading models
axis, and every random draw of seed s at step t comes from `fold_in(key_s, t)` (the models of
one seed see the same batches), so a run is a pure function of its config and a resumed run
reproduces an uninterrupted one. The batch is sampled on device inside the step, at the
training width.

Lengths (`settings.length_sampling`): "per_example" draws a length for every example and pads
all of them to the training width, so a whole run compiles a single program. "per_batch" (the
encoder protocol's official trainer) gives every example of step t the length of step t (see
`pe_jax.training._lengths`) and crops the batch to that length's bucket width, so a run
compiles one program per bucket it uses, lazily, and shorter steps cost less. The examples are
drawn at the training width and then cropped, so they do not depend on the bucketing.

How the seeds of one device are computed is `seed_loop`: "vmap" batches them (one wide
program, best where the device has idle parallelism: GPU, TPU), "map" runs them one after the
other inside the program (`jax.lax.map`). On a CPU "map" gives the higher throughput, because
the batched matmuls that vmap makes are slower there than S plain ones. "auto" picks
"map" on CPU and "vmap" elsewhere. Seeds split over the mesh's "seeds" axis are always
vmapped across devices.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from pe_jax._compile import jit_few_runs
from pe_jax.loss import logits, masked_metrics
from pe_jax.nn import Transformer
from pe_jax.training._gate import init_control, make_gate, masked_update
from pe_jax.training._lengths import LengthSchedule
from pe_jax.training._mesh import batch_sharding, make_mesh, seed_sharding
from pe_jax.training._optim import make_optimizer
from pe_jax.training._settings import SEED_LOOPS

if TYPE_CHECKING:
    from pe_jax.training._settings import Settings

# Salts that separate the streams derived from one (seed, step) key.
_DATA, _LENGTHS, _MODEL = 0, 1, 2


def seed_keys(seeds: Sequence[int]) -> jax.Array:
    """[S] PRNG keys, ``jax.random.key(seed)`` for each seed: the keys a run's program takes."""
    return jnp.stack([jax.random.key(int(seed)) for seed in seeds])


def model_keys(settings: Settings) -> jax.Array:
    """[M] the keys of `settings.models`: seed seeds[m // R]'s key for model m."""
    return seed_keys([seed for seed, _ in settings.models])


def _unit_optimizer(settings: Settings) -> optax.GradientTransformation:
    """The run's optimizer with peak rate 1: each model scales its update by its own rate."""
    return make_optimizer(**{**settings.optimizer, "learning_rate": 1.0})


@dataclasses.dataclass(frozen=True)
class TrainProgram:
    """The compiled pieces of a run: state initialisation and the vmapped training step.

    Attributes:
      init: model keys [M] (`model_keys`) -> state dict {"params", "rest", "opt_state",
        "control"} with a leading models axis M; control holds each model's "learning_rate",
        "done" and "steps_trained".
      step: (state, model keys [M], step int32 scalar) -> (state, metrics dict of [M] arrays);
        jitted with the state donated. A done model's params and opt_state are kept. Under
        per-batch lengths a `BucketedStep`: the step must be concrete (an int or a concrete
        array), since it picks the program.
      graphdef: the Transformer's graph definition, to rebuild a model from a state's params.
      traces: a one-element list counting how often `step` was traced, i.e. compiled (once
        per bucket width used under per-batch lengths).
      abstract_state: what `init(model_keys(settings))` returns, as ShapeDtypeStructs
        with their shardings: the target of a checkpoint restore.
      gate: (state, model keys [M]) -> {"exact_match": [M], "token_accuracy": [M]}, the
        held-out gate (`pe_jax.training._gate.make_gate`); gate_traces counts its traces.
      batch: (model key, step int) -> the `Batch` that `step` trains that model on (eagerly;
        for inspection and tests).
    """

    init: Callable
    step: Callable
    graphdef: nnx.GraphDef
    traces: list[int]
    abstract_state: dict
    gate: Callable | None = None
    gate_traces: list[int] = dataclasses.field(default_factory=lambda: [0])
    batch: Callable | None = None


def _resolved_seed_loop(settings: Settings, mesh: Mesh) -> str:
    """`settings.seed_loop` with "auto" resolved: "map" on CPU, "vmap" on GPU/TPU.

    Raises:
      ValueError: an unknown seed_loop.
    """
    seed_loop = settings.seed_loop
    if seed_loop not in SEED_LOOPS:
        raise ValueError(f"seed_loop must be one of {SEED_LOOPS}, got {seed_loop!r}.")
    if seed_loop == "auto":
        seed_loop = "map" if mesh.devices.flat[0].platform == "cpu" else "vmap"
    return seed_loop


def _initializer(
    settings: Settings, tx: optax.GradientTransformation, mesh: Mesh
) -> tuple[Callable, nnx.GraphDef, dict]:
    """The jitted state initialiser over the models axis, the graph definition and the abstract
    state.

    The models are initialised as the step trains them (`_over_seeds`: vmapped across the
    mesh's seed shards, within a shard vmapped or, on CPU by default, `lax.map`ped), the same
    values either way (tested); the map compiles the bare initialiser faster on XLA:CPU, though a
    whole main-job run's training compile did not measurably change. The model is built once, when
    `init` is traced for the abstract state; calling `init` on the same seed keys reuses that
    trace (jit's cache).
    """
    model_config = settings.model
    graphdefs = []
    rates = [rate for _, rate in settings.models]

    def init_one(key, rate):
        model = Transformer(model_config, rngs=nnx.Rngs(key))
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        graphdefs.append(graphdef)  # at trace time
        control = init_control(rate)
        return {"params": params, "rest": rest, "opt_state": tx.init(params), "control": control}

    lifted = _over_seeds(
        lambda rate, key: init_one(key, rate),
        mesh.shape["seeds"],
        _resolved_seed_loop(settings, mesh),
    )

    def init_models(keys):
        return lifted(jnp.asarray(rates, jnp.float32), keys)

    init = jit_few_runs(init_models, out_shardings=seed_sharding(mesh))  # runs once
    abstract = jax.eval_shape(init, model_keys(settings))
    return init, graphdefs[-1], abstract


def abstract_state(settings: Settings, mesh: Mesh | None = None) -> tuple[nnx.GraphDef, dict]:
    """The graph definition and the abstract state of `settings`' run, without a program.

    The state is {"params", "rest", "opt_state", "control"} as ShapeDtypeStructs with a leading
    models axis M = len(settings.models), sharded over `mesh` as
    `make_train_program(settings, mesh).init` returns it: what a checkpoint restore needs.
    Nothing is allocated and no step is traced.

    Args:
      settings: validated run settings (`settings_from_config`).
      mesh: ("seeds", "data") mesh; default `make_mesh()` (one seed shard, all devices).
    """
    tx = _unit_optimizer(settings)
    _, graphdef, abstract = _initializer(settings, tx, make_mesh() if mesh is None else mesh)
    return graphdef, abstract


def make_train_program(settings: Settings, mesh: Mesh) -> TrainProgram:
    """Builds the initialiser and the jitted, seed-vmapped training step of a run.

    What the step trains comes from `settings`: the model, the task and layout
    (`settings.protocol`), the optimizer, `batch_size` examples per seed per step with lengths
    uniform over [min_length, max_length], per example padded to `train_width` or per batch
    cropped to its bucket (`length_sampling`, see the module docstring), and `seed_loop`
    ("vmap", "map" or "auto").

    Args:
      settings: validated run settings (`settings_from_config`).
      mesh: ("seeds", "data") mesh; seeds are split over "seeds", each batch over "data"
        (batch_size divisible by its "data" axis).

    Raises:
      ValueError: an unknown seed_loop.
    """
    seed_loop = _resolved_seed_loop(settings, mesh)
    task, layout, batch_size = settings.task, settings.protocol, settings.batch_size
    min_length, max_length, width = settings.min_length, settings.max_length, settings.train_width
    tx = _unit_optimizer(settings)
    init, graphdef, abstract = _initializer(settings, tx, mesh)

    def loss_fn(params, rest, batch, key):
        model = nnx.merge(graphdef, params, rest)
        metrics = masked_metrics(logits(model, batch, key, deterministic=False), batch)
        return metrics["loss"], metrics

    traces = [0]

    def sample(key, length, bucket):
        if length is None:  # per example
            lengths = jax.random.randint(
                jax.random.fold_in(key, _LENGTHS), (batch_size,), min_length, max_length + 1
            )
        else:  # per batch: the step's length, the same for every seed
            lengths = jnp.full((batch_size,), length, jnp.int32)
        batch = task.sample(
            jax.random.fold_in(key, _DATA),
            batch_size=batch_size,
            length=lengths,
            layout=layout,
            width=width,
        )
        return _crop(batch, bucket)

    def step_one(state, seed_key, step, length=None, *, bucket=width):
        traces[0] += 1  # runs at trace time only: counts compilations of the step
        key = jax.random.fold_in(seed_key, step)
        batch = sample(key, length, bucket)
        batch = jax.lax.with_sharding_constraint(batch, batch_sharding(mesh))
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, metrics), grads = grad_fn(
            state["params"], state["rest"], batch, jax.random.fold_in(key, _MODEL)
        )
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        metrics["grad_norm"] = optax.tree.norm(grads)
        return masked_update(state, updates, opt_state), metrics

    def over_models(fn):
        return _over_seeds(fn, mesh.shape["seeds"], seed_loop)

    def compile_step(bucket: int) -> Callable:
        one = functools.partial(step_one, bucket=bucket)
        return jax.jit(over_models(one), donate_argnums=0)

    if settings.length_sampling == "per_batch":
        schedule = LengthSchedule(
            task,
            layout,
            min_length=min_length,
            max_length=max_length,
            multiple=settings.bucket_multiple,
            cap=width,
        )
        step = BucketedStep(compile_step, schedule)
    else:
        schedule, step = None, compile_step(width)
    gate, gate_traces = make_gate(settings, graphdef, over_models)

    def batch(seed_key, step):
        length, bucket = None, width
        if schedule is not None:
            length, bucket = schedule.length(step), schedule.width(step)
        return sample(jax.random.fold_in(seed_key, step), length, bucket)

    return TrainProgram(
        init=init,
        step=step,
        graphdef=graphdef,
        traces=traces,
        abstract_state=abstract,
        gate=gate,
        gate_traces=gate_traces,
        batch=batch,
    )


def _crop(batch, width: int):
    """The batch's [B, W] arrays cropped to their first `width` columns ([B] ones kept)."""
    return jax.tree.map(lambda x: x[:, :width] if x.ndim == 2 else x, batch)


class BucketedStep:
    """The training step under per-batch lengths: (state, keys, step) -> (state, metrics).

    Looks up step's length and bucket width in `schedule` and calls that bucket's program as
    (state, keys, step, length), compiling it on first use. `programs` maps each bucket width
    used so far to its jitted program.
    """

    def __init__(self, compile_step: Callable[[int], Callable], schedule: LengthSchedule):
        self._compile = compile_step
        self.schedule = schedule
        self.programs: dict[int, Callable] = {}

    def _pick(self, step) -> tuple[Callable, np.int32]:
        step = int(step)  # the step must be concrete: it chooses the program
        width = self.schedule.width(step)
        if width not in self.programs:
            self.programs[width] = self._compile(width)
        return self.programs[width], np.int32(self.schedule.length(step))

    def __call__(self, state, keys, step):
        program, length = self._pick(step)
        return program(state, keys, step, length)

    def lower(self, state, keys, step):
        """The lowered program of `step`'s bucket (as `jax.jit(...).lower`)."""
        program, length = self._pick(step)
        return program.lower(state, keys, step, length)


def _over_seeds(step_one: Callable, devices: int, seed_loop: str) -> Callable:
    """step_one over a leading seed axis: vmapped across the `devices` seed shards, and within
    a shard vmapped or `lax.map`ped per `seed_loop`. Arguments after the keys (the step, the
    length) are shared by every seed."""

    def across(state, keys, *shared):
        in_axes = (0, 0) + (None,) * len(shared)
        return jax.vmap(step_one, in_axes=in_axes, spmd_axis_name="seeds")(state, keys, *shared)

    if seed_loop == "vmap":
        return across

    def within(state, keys, *shared):
        return jax.lax.map(lambda sk: step_one(sk[0], sk[1], *shared), (state, keys))

    def step(state, keys, *shared):
        count = keys.shape[0]
        if count == devices:  # one seed per shard: nothing to loop over
            return across(state, keys, *shared)
        split = lambda x: x.reshape(devices, count // devices, *x.shape[1:])  # noqa: E731
        merge = lambda x: x.reshape(count, *x.shape[2:])  # noqa: E731
        in_axes = (0, 0) + (None,) * len(shared)
        out = jax.vmap(within, in_axes=in_axes, spmd_axis_name="seeds")(
            jax.tree.map(split, state), split(keys), *shared
        )
        return jax.tree.map(merge, out)

    return step
