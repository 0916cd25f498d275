"""Model-level measurements: the training step per encoding, seeds in one program, host
dispatch per step (the evaluation sweep is `_eval`'s)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp

from pe_jax.benchmark._profile import op_profile
from pe_jax.benchmark._timing import measure_chain
from pe_jax.nn import TransformerConfig
from pe_jax.tasks import get_task
from pe_jax.training import Settings, TrainProgram, make_mesh, make_train_program, seed_keys

LAYOUT = "encoder"


@dataclasses.dataclass(frozen=True)
class ReferenceModel:
    """The encoder-protocol model of Deletang et al. 2023 / Ruoss et al. 2023 and its batch.

    Defaults: 5 post-LN blocks, width 64, 8 heads, MLP 4x, dropout 0.1, batch 128, training
    lengths 1..40 on binary `reverse` (encoder layout: 2 * 40 = 80 slots per example, so a
    step processes 128 x 80 token slots per seed), Adam with gradient clipping at 1.0.
    """

    task: str = "reverse"
    num_layers: int = 5
    width: int = 64
    num_heads: int = 8
    mlp_ratio: int = 4
    dropout: float = 0.1
    norm: str = "post"
    batch_size: int = 128
    max_length: int = 40
    learning_rate: float = 1e-4

    def model_config(self, encoding: str, **options) -> TransformerConfig:
        """The TransformerConfig of this model with `encoding` (bidirectional encoder)."""
        return TransformerConfig(
            vocab_size=get_task(self.task).vocab_size,
            width=self.width,
            num_heads=self.num_heads,
            num_layers=self.num_layers,
            mlp_ratio=self.mlp_ratio,
            dropout=self.dropout,
            norm=self.norm,
            causal=False,
            encoding=encoding,
            encoding_options=options,
        )

    @property
    def train_width(self) -> int:
        """Padded width W of a training batch (the slots of the longest training example)."""
        return get_task(self.task).width(self.max_length, LAYOUT)

    def settings(self, encoding: str, *, num_seeds: int = 1, seed_loop: str = "auto") -> Settings:
        """The run `Settings` of this model's training step (the evaluation fields are unused)."""
        return Settings(
            task=get_task(self.task),
            protocol=LAYOUT,
            model=self.model_config(encoding),
            seeds=tuple(range(num_seeds)),
            steps=10**9,
            batch_size=self.batch_size,
            min_length=1,
            max_length=self.max_length,
            train_width=self.train_width,
            optimizer=dict(learning_rate=self.learning_rate, total_steps=10**9, clip_norm=1.0),
            log_every=10,
            checkpoint_every=10**9,
            eval_lengths=(self.max_length,),
            eval_samples=1,
            eval_seed=0,
            mesh_shape=None,
            seed_loop=seed_loop,
        )

    @property
    def tokens_per_step(self) -> int:
        """Token slots per seed per step, B x W."""
        return self.batch_size * self.train_width


def build_program(
    model: ReferenceModel, encoding: str, *, num_seeds: int = 1, seed_loop: str = "auto"
) -> tuple[TrainProgram, dict, jax.Array]:
    """The runner's seed-vmapped training program for `model`, its initial state and seed keys."""
    settings = model.settings(encoding, num_seeds=num_seeds, seed_loop=seed_loop)
    program = make_train_program(settings, make_mesh())
    keys = seed_keys(settings.seeds)
    return program, program.init(keys), keys


def _flops(stage) -> float | None:
    """Total FLOPs from XLA's cost analysis of a lowered or compiled program (None if absent)."""
    analysis = stage.cost_analysis()
    if isinstance(analysis, list | tuple):  # older JAX: one dict per partition
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        return None
    return float(analysis["flops"])


def time_train_step(
    model: ReferenceModel,
    encoding: str,
    *,
    num_seeds: int = 1,
    seed_loop: str = "auto",
    repeats: int,
    steps_per_run: int,
    dispatch_steps: int = 0,
    log_every: int = 10,
) -> dict[str, Any]:
    """Median time of one training step (all seeds), its FLOPs, compile time and tokens/s.

    The runner's jitted step is timed as the runner calls it, with the state donated from
    step to step. FLOPs come from XLA's cost analysis of the lowered step
    (`jit(...).lower(...).cost_analysis()`), which needs no second compilation. With
    `dispatch_steps`, the same program then runs the loop of `_dispatch_loop`.
    """
    with jax.set_mesh(make_mesh()):
        program, state, keys = build_program(
            model, encoding, num_seeds=num_seeds, seed_loop=seed_loop
        )
        flops = _flops(program.step.lower(state, keys, jnp.int32(0)))
        start = time.perf_counter()
        state, metrics = program.step(state, keys, jnp.int32(0))
        jax.block_until_ready((state, metrics))
        compile_s = time.perf_counter() - start
        t, state = measure_chain(
            lambda s, i: program.step(s, keys, jnp.int32(i + 1)),
            state,
            repeats=repeats,
            warmup=1,
            steps_per_run=steps_per_run,
        )
        dispatch = None
        if dispatch_steps:
            dispatch = _dispatch_loop(program, state, keys, steps=dispatch_steps, every=log_every)
    tokens = num_seeds * model.tokens_per_step
    row = {
        "encoding": encoding,
        "num_seeds": num_seeds,
        "seed_loop": seed_loop,
        "step_s": t["median_s"],
        "step_min_s": t["min_s"],
        "step_max_s": t["max_s"],
        "tokens_per_step": tokens,
        "tokens_per_s": tokens / t["median_s"],
        "flops_per_step": flops,
        "flops_per_s": None if flops is None else flops / t["median_s"],
        "compile_s": compile_s,
        "compilations": program.traces[0],
    }
    if dispatch is not None:
        row["dispatch"] = {"encoding": encoding, **dispatch}
    return row


def _dispatch_loop(program: TrainProgram, state, keys, *, steps: int, every: int) -> dict:
    """Host time per step of the runner's loop shape versus the step time of that loop.

    The loop dispatches a step, keeps its metrics without reading them, and fetches the pending
    metrics every `every` steps, as `pe_jax.training._run._train_loop` does. If the host
    returns from a call much sooner than the step runs, the next step is queued while the
    current one computes and the device never waits for Python.
    """
    dispatch, pending = [], []
    start = time.perf_counter()
    for step in range(steps):
        t0 = time.perf_counter()
        state, metrics = program.step(state, keys, jnp.int32(10_000 + step))
        dispatch.append(time.perf_counter() - t0)
        pending.append(metrics)
        if (step + 1) % every == 0:
            jax.device_get(pending)
            pending = []
    jax.block_until_ready((state, pending))
    loop_step = (time.perf_counter() - start) / steps
    median = sorted(dispatch)[len(dispatch) // 2]
    return {
        "steps": steps,
        "log_every": every,
        "loop_step_s": loop_step,
        "dispatch_median_s": median,
        "dispatch_fraction": median / loop_step,
        "compilations": program.traces[0],
    }


def profile_train_step(model: ReferenceModel, encoding: str, *, steps: int) -> dict[str, Any]:
    """The per-op profile (`_profile.op_profile`) of `steps` training steps of `model`."""
    with jax.set_mesh(make_mesh()):
        program, state, keys = build_program(model, encoding)
        hlo = program.step.lower(state, keys, jnp.int32(0)).compile().as_text()
        state, _ = program.step(state, keys, jnp.int32(0))  # compiles

        def run():
            nonlocal state
            for i in range(steps):
                state, _ = program.step(state, keys, jnp.int32(i + 1))
            jax.block_until_ready(state)

        run()  # warm
        config = model.model_config(encoding)
        matrix = model.batch_size * config.num_heads * model.train_width**2
        return {"encoding": encoding, **op_profile(run, hlo, steps=steps, matrix_elements=matrix)}
