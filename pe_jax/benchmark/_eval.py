"""Evaluation measurements: the 1..N sweep of a run's models, and its levers A/B.

`eval_sweep` times `pe_jax.evaluation.evaluate` as a run calls it (all of a run's models in
each bucket's program) over sampled lengths and estimates the whole sweep; `eval_levers`
compares variants of one bucket's program (attention blocks, the loop over models, XLA
options), compiled side by side and timed interleaved in one process.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from pe_jax._compile import FEW_RUNS
from pe_jax.benchmark._model import LAYOUT, ReferenceModel, build_program
from pe_jax.evaluation import evaluate, make_eval_program
from pe_jax.tasks import bucket_width, get_task
from pe_jax.training import make_mesh

# XLA:CPU options tried by `eval_levers` on the evaluation programs (accepted by JAX 0.10's
# CPU client; unknown names are rejected at compile time).
LOW_OPTIMIZATION = FEW_RUNS  # the options of programs run once (pe_jax._compile)


class _CompileCounter:
    """Counts XLA backend compilations (jax.monitoring events) and their seconds while active."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.count, self.seconds = 0, 0.0

    def __call__(self, event: str, duration: float, **kwargs) -> None:
        del kwargs
        if event == self.EVENT:
            self.count += 1
            self.seconds += duration

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)


def power_of_two_bucket(width: int) -> int:
    """The bucket policy before steps of 64 above 256 slots (the comparison's "before")."""
    return max(8, 1 << (int(width) - 1).bit_length())


def bucket_sample(model: ReferenceModel, lengths: Sequence[int], per_bucket: int) -> list[int]:
    """The first `per_bucket - 1` lengths and the last length of every padded-width bucket."""
    task = get_task(model.task)
    buckets: dict[int, list[int]] = {}
    for t in lengths:
        buckets.setdefault(bucket_width(task.width(t, LAYOUT)), []).append(t)
    picked = set()
    for members in buckets.values():
        picked.update(members[: max(per_bucket - 1, 1)] + members[-1:])
    return sorted(picked)


def _timed_eval_programs(times: dict[int, list[float]]):
    """An `evaluate` on_program hook that records each call's time by padded width.

    Instrumentation only: the wrapper waits for each call (evaluate itself does not), which
    costs nothing measurable next to a forward pass of 64 examples.
    """

    def on_program(width, program):
        def timed(*args):
            start = time.perf_counter()
            out = jax.block_until_ready(program(*args))
            times.setdefault(width, []).append(time.perf_counter() - start)
            return out

        return timed

    return on_program


def eval_sweep(
    model: ReferenceModel,
    encoding: str,
    *,
    lengths: Sequence[int],
    samples: int,
    models: int = 1,
    per_bucket: int | None = None,
) -> dict[str, Any]:
    """Wall time and compilations of `evaluate` over `lengths` for a run of `models` models.

    The models (untrained, stacked as a run stacks its seeds x rates) are evaluated together,
    one program per padded bucket, `samples` examples per length in one call. With
    `per_bucket`, only that many lengths of each bucket are evaluated (every bucket still
    compiles), and the whole sweep is estimated as the measured wall time plus, per bucket,
    the median time of a call after the first (a compiled program at that width) for every
    length left out. `by_policy` sets this policy's estimate beside the power-of-two buckets'
    from the same per-width times: the run seconds (each length at its bucket's steady time)
    and the compile seconds (per program, its first call less its steady time).

    `num_compilations` is evaluate's own count (one program per padded bucket plus the
    sampler); `xla_compilations` and `compile_s` count every XLA compilation observed during
    the call, including small eager helpers, as an independent check.
    """
    sweep = bucket_sample(model, lengths, per_bucket) if per_bucket else list(lengths)
    times: dict[int, list[float]] = {}
    with jax.set_mesh(make_mesh()):
        program, state, _ = build_program(model, encoding, num_seeds=models)
        jax.block_until_ready(state)
        with _CompileCounter() as counter:
            start = time.perf_counter()
            result = evaluate(
                state,
                program.graphdef,
                task=get_task(model.task),
                layout=LAYOUT,
                lengths=sweep,
                samples=samples,
                on_program=_timed_eval_programs(times),
            )
            wall = time.perf_counter() - start
    task = get_task(model.task)
    widths = [task.width(t, LAYOUT) for t in lengths]
    full_counts: dict[int, int] = {}
    for w in widths:
        full_counts[bucket_width(w)] = full_counts.get(bucket_width(w), 0) + 1
    estimate = wall
    per_width = {}
    for w, calls in sorted(times.items()):
        steady = statistics.median(calls[1:]) if len(calls) > 1 else calls[0]
        estimate += (full_counts.get(w, 0) - len(calls)) * steady
        per_width[w] = {"calls": len(calls), "first_s": calls[0], "steady_s": steady}
    lengths = list(lengths)
    return {
        "encoding": encoding,
        "task": model.task,
        "models": models,
        "min_length": min(lengths),
        "max_length": max(lengths),
        "num_lengths": len(lengths),
        "evaluated_lengths": len(sweep),
        "samples": samples,
        "bucket_widths": sorted(set(result["widths"])),
        "wall_s": wall,
        "full_sweep_estimate_s": estimate,
        "by_policy": {
            "steps_of_64_above_256": _policy_estimate(widths, per_width, bucket_width),
            "powers_of_two": _policy_estimate(widths, per_width, power_of_two_bucket),
        },
        "per_width": {str(w): row for w, row in per_width.items()},
        "num_compilations": result["num_compilations"],
        "xla_compilations": counter.count,
        "compile_s": counter.seconds,
    }


def _policy_estimate(widths: list[int], per_width: dict[int, dict], policy) -> dict[str, Any]:
    """Run and compile seconds of a sweep whose lengths have `widths` under a bucket `policy`,
    from the measured per-width times (None when a bucket of the policy was not measured)."""
    buckets = [policy(w) for w in widths]
    if any(b not in per_width for b in buckets):
        return {"programs": len(set(buckets)), "run_s": None, "compile_s": None, "total_s": None}
    run = sum(per_width[b]["steady_s"] for b in buckets)
    compile_s = sum(
        max(per_width[b]["first_s"] - per_width[b]["steady_s"], 0.0) for b in set(buckets)
    )
    return {
        "programs": len(set(buckets)),
        "run_s": run,
        "compile_s": compile_s,
        "total_s": run + compile_s,
    }


def eval_levers(
    model: ReferenceModel,
    encoding: str,
    *,
    width: int,
    samples: int,
    models: int,
    repeats: int,
    variants: Sequence[str] = ("blocked", "unblocked", "vmap", "low_optimization"),
) -> list[dict[str, Any]]:
    """One bucket's evaluation program at `width` in variants, timed interleaved (A B A B).

    Variants (each against "blocked", the default program: blocked attention, models looped
    with `lax.map` on a CPU, default XLA options): "unblocked" (attention in one [B, H, L, S]
    block, `block_logits=0`), "vmap" (the models batched), "low_optimization" (compiled with
    `LOW_OPTIMIZATION`). Each row: compile seconds (`lower(...).compile()`), the median wall
    and process-CPU seconds of a call over `repeats` rounds, and the largest difference of its
    metrics from the first variant's.
    """
    task = get_task(model.task)
    length = max(t for t in range(1, width + 1) if task.width(t, LAYOUT) <= width)
    batch = task.sample(
        jax.random.key(0),
        batch_size=samples,
        length=jnp.full((samples,), length, jnp.int32),
        layout=LAYOUT,
        width=width,
    )
    key = jax.random.key(1)
    with jax.set_mesh(make_mesh()):
        program, state, _ = build_program(model, encoding, num_seeds=models)
    args = (state["params"], state["rest"], batch, key)
    compiled, rows = {}, {}
    for name in variants:
        graphdef, options = program.graphdef, {}
        if name == "unblocked":
            graphdef = nnx.split(
                nnx.with_attributes(nnx.merge(program.graphdef, *args[:2]), block_logits=0)
            )[0]
        elif name == "vmap":
            options["model_loop"] = "vmap"
        elif name == "low_optimization":
            options["compiler_options"] = LOW_OPTIMIZATION
        elif name != "blocked":
            raise ValueError(f"variants: unknown variant {name!r}; known: blocked, unblocked, ...")
        fn = make_eval_program(graphdef, width=width, **options)
        start = time.perf_counter()
        compiled[name] = fn.lower(*args).compile()
        rows[name] = {"variant": name, "compile_s": time.perf_counter() - start}
    walls = {name: [] for name in variants}
    cpus = {name: [] for name in variants}
    first = {}
    for _ in range(repeats):
        for name in variants:
            wall, cpu = time.perf_counter(), time.process_time()
            out = jax.block_until_ready(compiled[name](*args))
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
            first.setdefault(name, out)
    reference = first[variants[0]]
    for name in variants:
        diff = max(
            float(jnp.max(jnp.abs(first[name][m] - reference[m])))
            for m in ("loss", "token_accuracy")
        )
        rows[name].update(
            run_s=statistics.median(walls[name]),
            run_cpu_s=statistics.median(cpus[name]),
            max_metric_difference=diff,
        )
    base = rows[variants[0]]
    for row in rows.values():
        row["run_relative"] = row["run_s"] / base["run_s"]
        row["run_cpu_relative"] = row["run_cpu_s"] / base["run_cpu_s"]
    info = {"width": width, "length": length, "samples": samples, "models": models}
    return [{**info, **row} for row in rows.values()]
