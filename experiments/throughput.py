"""Useful tokens/s of the reference training step: the previous behaviour vs today's defaults.

  python -m experiments.throughput [encoding, default rope] [rounds, default 5] [out.md]

With a third argument, the table is also written to that Markdown file (which
docs/performance.md quotes).

A: a length per example padded to the training width, attention via
   `jax.nn.dot_product_attention` (train.length_sampling="per_example", attention_impl="xla"),
   default XLA:CPU flags: the tree before the throughput work.
B: one length per batch in width buckets of 16, the custom-gradient CPU attention
   (length_sampling="per_batch", attention_impl="cpu") and the entry points' XLA:CPU flags
   (`pe_jax.runtime.CPU_XLA_FLAGS`): the encoder protocol's default now.
XLA flags are fixed when a process starts, so each side lives in its own process; the two
processes take turns (A B A B ..., never at once) over the same step numbers, and the figure
is the median over rounds. Useful tokens = real (non-padding) slots of the batches each side
trains (counted from its own batches). The reference model is
`pe_jax.benchmark.ReferenceModel` (reverse, lengths 1..40, 5 post-LN blocks, width 64,
8 heads, batch 128).
"""

import multiprocessing
import os
import sys
import time

SIDES = (("A_previous", "per_example", "xla", ""), ("B_today", "per_batch", "cpu", None))
STEPS = 20  # steps per timing
FIRST = 1000  # first timed step (after warm-up)


def _worker(conn, encoding: str, sampling: str, impl: str) -> None:
    """One side: builds and warms its program, then times each span the parent sends."""
    import dataclasses

    import jax
    import numpy as np

    from pe_jax import runtime
    from pe_jax.benchmark import ReferenceModel
    from pe_jax.training import make_mesh, make_train_program, model_keys

    runtime.configure(cache_dir="")  # flags only where the parent left XLA_FLAGS unset
    mesh = make_mesh()
    with jax.set_mesh(mesh):
        s = ReferenceModel().settings(encoding)
        s = dataclasses.replace(
            s, length_sampling=sampling, model=dataclasses.replace(s.model, attention_impl=impl)
        )
        program = make_train_program(s, mesh)
        keys = model_keys(s)
        state = program.init(keys)
        for t in range(30 if sampling == "per_batch" else 2):  # compiles every bucket used
            state, _ = program.step(state, keys, np.int32(t))
        jax.block_until_ready(state)
        conn.send(("ready", os.environ.get("XLA_FLAGS")))
        while (span := conn.recv()) is not None:
            start = time.perf_counter()
            for t in span:
                state, metrics = program.step(state, keys, np.int32(t))
            jax.block_until_ready((state, metrics))
            elapsed = time.perf_counter() - start
            useful = sum(int(program.batch(keys[0], t).valid.sum()) for t in span)
            conn.send((elapsed, useful))
        conn.send(("programs", program.traces[0]))


def main(encoding: str = "rope", rounds: int = 5, markdown: str | None = None) -> None:
    import numpy as np

    from pe_jax.benchmark import machine_info

    context = multiprocessing.get_context("spawn")
    sides = {}
    for name, sampling, impl, flags in SIDES:
        parent, child = context.Pipe()
        saved = os.environ.get("XLA_FLAGS")
        if flags is not None:  # "" = XLA's defaults; None = leave the entry points' choice
            os.environ["XLA_FLAGS"] = flags
        process = context.Process(target=_worker, args=(child, encoding, sampling, impl))
        process.start()
        if saved is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = saved
        _, used = parent.recv()  # one side warms up at a time
        sides[name] = {"conn": parent, "process": process, "flags": used, "times": [], "useful": []}
    for r in range(rounds):
        span = range(FIRST + r * STEPS, FIRST + (r + 1) * STEPS)
        for side in sides.values():
            side["conn"].send(span)
            elapsed, useful = side["conn"].recv()
            side["times"].append(elapsed)
            side["useful"].append(useful)
    rates, rows = {}, []
    for name, side in sides.items():
        side["conn"].send(None)
        programs = side["conn"].recv()[1]
        side["process"].join()
        rates[name] = float(np.median(np.divide(side["useful"], side["times"])))
        step_ms = np.median(side["times"]) / STEPS * 1e3
        print(
            f"{encoding} {name}: {step_ms:.1f} ms/step, useful tokens/s {rates[name]:.0f}, "
            f"{programs} training program(s), XLA_FLAGS={side['flags']!r}"
        )
        rows.append(
            f"| {name} | {step_ms:.0f} | {rates[name]:.0f} | {programs} | `{side['flags']!r}` |"
        )
    ratio = rates["B_today"] / rates["A_previous"]
    print(f"{encoding}: B/A useful tokens/s {ratio:.2f}x")
    if markdown:
        m = machine_info()
        lines = [
            f"Useful tokens/s of the reference training step ({encoding}; reverse, lengths "
            "1..40, 5 post-LN blocks, width 64, 8 heads, batch 128): A = a length per example "
            "padded to 80 slots, `jax.nn.dot_product_attention`, XLA's default flags (the tree "
            "before the throughput work); B = one length per batch in width buckets of 16, the "
            "CPU attention, the entry points' flags. Two processes taking turns, median of "
            f"{rounds} rounds of {STEPS} steps; {m['cpu_count']} CPUs ({m['processor']}), "
            f"JAX {m['jax_version']}, load average {m['load_average']} at the end.",
            "",
            "| side | ms/step | useful tokens/s | training programs | XLA_FLAGS |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"B/A useful tokens/s: **{ratio:.2f}x** (target >= 2x: "
            f"{'met' if ratio >= 2 else 'NOT met'}).",
        ]
        with open(markdown, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0] if args else "rope", int(args[1]) if len(args) > 1 else 5, *args[2:3])
