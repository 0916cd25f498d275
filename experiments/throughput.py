"""One lever of the training step's speed, measured before and after: two processes in turns.

  python -m experiments.throughput --lever=host_memory --models=10 --markdown=out.md
  python -m experiments.throughput --lever=previous --encoding=rope --rounds=5

Levers (`LEVERS`):
- previous: A = a length per example padded to the training width, attention via
  `jax.nn.dot_product_attention`, default XLA:CPU flags (the tree before the throughput work);
  B = one length per batch in width buckets of 16, the custom-gradient CPU attention and the
  entry points' XLA:CPU flags (`pe_jax.runtime.CPU_XLA_FLAGS`).
- host_memory: both today's defaults; A without, B with `pe_jax.runtime.keep_host_memory`
  (`PE_JAX_KEEP_HOST_MEMORY=0` / `1`).
- buckets: per-batch lengths in widths rounded up to multiples of 16 (A) or at their exact
  width (B, multiple 2: the encoder layout's widths are even), i.e. 5 vs 40 programs.

Before timing, each side runs one step of every bucket the timed steps use (its "warm-up",
which is mostly compilation, is reported), so no compilation falls inside a timed span.

Settings fixed at start-up (XLA flags, glibc malloc) need a process per side, so each side
lives in its own process; the two take turns (A B A B ..., never at once) over the same step
numbers, and each figure is the median over rounds. Useful tokens = real (non-padding) slots
of the batches each side trains (counted from its own batches), summed over the models. Each
span also records CPU seconds (`time.process_time`) and minor page faults (`ru_minflt`) per
step. The model is `pe_jax.benchmark.ReferenceModel` (reverse, lengths 1..40, 5 post-LN
blocks, width 64, 8 heads, batch 128), `--models` of them in one program (seeds), as a run
trains its seeds x rates.
"""

import multiprocessing
import os
import resource
import time

from absl import flags

from experiments import _cli

# lever -> ((side name, Settings fields, model fields, environment), ...) for A then B.
# An environment value None removes the variable, so the entry points' default applies.
_TODAY = {"length_sampling": "per_batch"}
LEVERS = {
    "previous": (
        (
            "A_previous",
            {"length_sampling": "per_example"},
            {"attention_impl": "xla"},
            {"XLA_FLAGS": ""},
        ),
        ("B_today", _TODAY, {"attention_impl": "cpu"}, {"XLA_FLAGS": None}),
    ),
    "host_memory": (
        ("A_unkept", _TODAY, {}, {"PE_JAX_KEEP_HOST_MEMORY": "0"}),
        ("B_kept", _TODAY, {}, {"PE_JAX_KEEP_HOST_MEMORY": "1"}),
    ),
    "buckets": (
        ("A_multiple_16", {**_TODAY, "bucket_multiple": 16}, {}, {}),
        ("B_exact", {**_TODAY, "bucket_multiple": 2}, {}, {}),
    ),
}
FIRST = 1000  # first timed step (after warm-up)

_LEVER = flags.DEFINE_enum("lever", "host_memory", list(LEVERS), "Which lever to measure.")
_ENCODING = flags.DEFINE_string("encoding", "rope", "Encoding of the reference model.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Rounds of A then B.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 20, "Steps per side per round.", lower_bound=1)
_MODELS = flags.DEFINE_integer("models", 1, "Models (seeds) in the program.", lower_bound=1)
_MARKDOWN = flags.DEFINE_string("markdown", None, "Also write the table to this file.")


def _worker(conn, encoding: str, fields: dict, model_fields: dict, models: int, timed) -> None:
    """One side: builds and warms its program, then times each span the parent sends."""
    import dataclasses

    import jax
    import numpy as np

    from pe_jax import runtime
    from pe_jax.benchmark import ReferenceModel
    from pe_jax.training import make_mesh, make_train_program, model_keys

    info = runtime.configure(cache_dir="")  # flags only where the parent left XLA_FLAGS unset
    mesh = make_mesh()
    with jax.set_mesh(mesh):
        s = ReferenceModel().settings(encoding, num_seeds=models)
        s = dataclasses.replace(s, **fields, model=dataclasses.replace(s.model, **model_fields))
        program = make_train_program(s, mesh)
        keys = model_keys(s)
        state = program.init(keys)
        schedule = getattr(program.step, "schedule", None)
        warm = {schedule.width(t): t for t in timed} if schedule else {0: timed[0]}
        start = time.perf_counter()
        for t in [*warm.values(), timed[0]]:  # compiles every program the timed steps use
            state, _ = program.step(state, keys, np.int32(t))
        jax.block_until_ready(state)
        warm_s = time.perf_counter() - start
        conn.send(("ready", info["xla_flags"], info["host_memory"], warm_s))
        while (span := conn.recv()) is not None:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            cpu, start = time.process_time(), time.perf_counter()
            for t in span:
                state, metrics = program.step(state, keys, np.int32(t))
            jax.block_until_ready((state, metrics))
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            useful = models * sum(int(program.batch(keys[0], t).valid.sum()) for t in span)
            conn.send((elapsed, cpu, faults, useful))
        conn.send(("programs", program.traces[0]))


def _start(context, lever_side, encoding: str, models: int, timed: list[int]) -> dict:
    """Starts one side's process under its environment; returns once it has warmed up."""
    name, fields, model_fields, environment = lever_side
    parent, child = context.Pipe()
    saved = {key: os.environ.get(key) for key in environment}
    for key, value in environment.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    process = context.Process(
        target=_worker, args=(child, encoding, fields, model_fields, models, timed)
    )
    process.start()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _, xla_flags, host_memory, warm_s = parent.recv()  # one side warms up at a time
    return {
        "name": name,
        "conn": parent,
        "process": process,
        "xla_flags": xla_flags,
        "host_memory": host_memory,
        "warm_s": warm_s,
        "spans": [],
    }


def measure(lever: str, *, encoding: str, rounds: int, steps: int, models: int) -> list[dict]:
    """Each side's medians per step: wall s, CPU s, minor faults and useful tokens/s."""
    import numpy as np

    context = multiprocessing.get_context("spawn")
    timed = list(range(FIRST, FIRST + rounds * steps))
    sides = [_start(context, side, encoding, models, timed) for side in LEVERS[lever]]
    for r in range(rounds):
        span = range(FIRST + r * steps, FIRST + (r + 1) * steps)
        for side in sides:
            side["conn"].send(span)
            side["spans"].append(side["conn"].recv())
    rows = []
    for side in sides:
        side["conn"].send(None)
        programs = side["conn"].recv()[1]
        side["process"].join()
        wall, cpu, faults, useful = (np.array(v, float) for v in zip(*side["spans"], strict=True))
        rows.append(
            {
                "side": side["name"],
                "step_s": float(np.median(wall)) / steps,
                "cpu_s_per_step": float(np.median(cpu)) / steps,
                "minor_faults_per_step": float(np.median(faults)) / steps,
                "useful_tokens_per_s": float(np.median(useful / wall)),
                "model_steps_per_s": float(np.median(models * steps / wall)),
                "programs": programs,
                "warm_up_s": side["warm_s"],
                "xla_flags": side["xla_flags"],
                "host_memory": side["host_memory"],
            }
        )
    return rows


def markdown(lever: str, rows: list[dict], *, encoding: str, rounds: int, steps: int, models: int):
    """The table and the B/A ratio as Markdown lines."""
    from pe_jax.benchmark import machine_info

    m = machine_info()
    a, b = rows
    ratio = b["useful_tokens_per_s"] / a["useful_tokens_per_s"]
    return [
        f"Lever `{lever}` on the reference training step ({encoding}; reverse, lengths 1..40, "
        f"5 post-LN blocks, width 64, 8 heads, batch 128; {models} model(s) in one program). "
        f"Two processes taking turns (A B A B), median of {rounds} rounds of {steps} steps; "
        f"{m['cpu_count']} CPUs ({m['processor']}), JAX {m['jax_version']}, load average "
        f"{m['load_average']} at the end. "
        f"Command: `python -m experiments.throughput --lever={lever} --encoding={encoding} "
        f"--models={models} --rounds={rounds} --steps={steps}`.",
        "",
        "| side | s/step | CPU s/step | minor faults/step | model-steps/s | useful tokens/s "
        "| training programs | warm-up s (compiles) | host memory | XLA_FLAGS |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['side']} | {r['step_s']:.3f} | {r['cpu_s_per_step']:.3f} | "
            f"{r['minor_faults_per_step']:.0f} | {r['model_steps_per_s']:.2f} | "
            f"{r['useful_tokens_per_s']:.0f} | {r['programs']} | {r['warm_up_s']:.1f} | "
            f"{r['host_memory']} | "
            f"`{r['xla_flags']!r}` |"
            for r in rows
        ),
        "",
        f"B/A useful tokens/s: **{ratio:.2f}x**.",
    ]


def main(argv):
    del argv
    kwargs = dict(
        encoding=_ENCODING.value, rounds=_ROUNDS.value, steps=_STEPS.value, models=_MODELS.value
    )
    rows = measure(_LEVER.value, **kwargs)
    lines = markdown(_LEVER.value, rows, **kwargs)
    print("\n".join(lines))
    if _MARKDOWN.value:
        with open(_MARKDOWN.value, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    _cli.run(main)
