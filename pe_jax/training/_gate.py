"""The models axis, the learned gate and train-to-criterion.

A run trains M = S x R models in one program: model m has seed seeds[m // R] and peak learning
rate rates[m % R] (`Settings.models`). The optimizer is built once with a unit peak rate, so its
schedule (warmup, cosine, constant) is a shape in [0, 1]; each model scales its update by its
own rate, carried in the state, so every rate shares one compiled step. Optax multiplies the
whole Adam(W) update, weight decay included, by the scheduled rate, so the scaled update is the
update of an optimizer built with that model's rate (up to float rounding).

The gate measures each model's held-out exact match and per-token accuracy at the longest
training lengths, on examples drawn from the evaluation seed (a stream separate from training
and from the final length sweep), every `gate_every` steps and at the end. With `until` set, a
model whose exact match reaches it is done: its parameters and optimizer state are kept as they
are from then on (`jnp.where(done, old, new)` per leaf), so models stop independently inside the
one program. `done` and the steps each model trained live in the state, so a resumed run
continues exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from pe_jax.loss import logits, per_example_metrics

if TYPE_CHECKING:
    from pe_jax.training._settings import Settings

# Folded into the evaluation seed's key: the gate's examples are neither the training batches
# (whose steps stay below 2**31 - 1) nor the final sweep's (folded with lengths directly).
GATE_SALT = 2**31 - 1


def init_control(rate: jax.Array) -> dict:
    """One model's control state: its peak learning rate, whether it is done, steps trained."""
    return {
        "learning_rate": jnp.asarray(rate, jnp.float32),
        "done": jnp.zeros((), bool),
        "steps_trained": jnp.zeros((), jnp.int32),
    }


def masked_update(state: dict, updates, opt_state) -> dict:
    """One model's state after a step: `updates` (from the unit-rate optimizer) scaled by the
    model's rate and applied, unless the model is done, whose params and optimizer state stay.

    Args:
      state: {"params", "rest", "opt_state", "control"} of one model (no models axis).
      updates, opt_state: what the unit-rate optimizer's `update` returned for it.
    """
    control = state["control"]
    rate, done = control["learning_rate"], control["done"]
    updates = jax.tree.map(lambda u: u * rate.astype(u.dtype), updates)
    new = (optax.apply_updates(state["params"], updates), opt_state)
    old = (state["params"], state["opt_state"])
    params, opt_state = jax.tree.map(lambda o, n: jnp.where(done, o, n), old, new)
    steps = control["steps_trained"] + jnp.where(done, 0, 1).astype(jnp.int32)
    return {
        **state,
        "params": params,
        "opt_state": opt_state,
        "control": {**control, "steps_trained": steps},
    }


def make_gate(
    settings: Settings, graphdef: nnx.GraphDef, over_models: Callable[[Callable], Callable]
) -> tuple[Callable, list[int]]:
    """The jitted gate program and a one-element list counting its traces.

    The program maps (state {"params", "rest", ...} with a models axis M, model keys [M]) to
    {"exact_match": [M], "token_accuracy": [M]}: `settings.gate_samples` examples at each of
    `settings.gate_lengths`, padded to the training width, the same examples for every model
    and every call; exact match over all of them, token accuracy averaged per example.

    Args:
      settings: the run's settings.
      graphdef: the Transformer's graph definition.
      over_models: lifts a per-model function (state, key, step) over the models axis as the
        training step is lifted (vmap or map, split over the mesh's "seeds" axis).
    """
    lengths = settings.gate_lengths or (settings.max_length,)
    per_example = [t for t in lengths for _ in range(settings.gate_samples)]
    traces = [0]

    def one(state, _key, _step):
        traces[0] += 1
        base = jax.random.fold_in(jax.random.key(settings.eval_seed), GATE_SALT)
        batch = settings.task.sample(
            jax.random.fold_in(base, 0),
            batch_size=len(per_example),
            length=jnp.asarray(per_example, jnp.int32),
            layout=settings.protocol,
            width=settings.train_width,
        )
        model = nnx.merge(graphdef, state["params"], state["rest"])
        metrics = per_example_metrics(logits(model, batch, jax.random.fold_in(base, 1)), batch)
        return {name: metrics[name] for name in ("exact_match", "token_accuracy")}

    lifted = over_models(one)

    def gate(state, keys):
        return lifted({"params": state["params"], "rest": state["rest"]}, keys, jnp.int32(0))

    return jax.jit(gate), traces


@jax.jit
def _mark_done(control: dict, exact_match: jax.Array, until: jax.Array) -> dict:
    return {**control, "done": control["done"] | (exact_match >= until)}


def apply_until(state: dict, exact_match: jax.Array, until: float | None) -> dict:
    """`state` with the models whose gate exact match reached `until` marked done (None: off)."""
    if until is None:
        return state
    control = _mark_done(state["control"], exact_match, jnp.float32(until))
    return {**state, "control": control}
