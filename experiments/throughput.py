"""Useful tokens/s of the reference training step: the previous behaviour vs today's defaults.

  python -m experiments.throughput [encoding, default rope] [rounds, default 5]

A: a length per example padded to the training width, attention via
   `jax.nn.dot_product_attention` (train.length_sampling="per_example", attention_impl="xla").
B: one length per batch in width buckets of 16, the custom-gradient CPU attention
   (length_sampling="per_batch", attention_impl="cpu"): the encoder protocol's default now.
One process, the same XLA flags, the sides interleaved per round over the same step numbers;
useful tokens = real (non-padding) slots of the batches each side trains (counted from its own
batches). The reference model is `pe_jax.benchmark.ReferenceModel` (reverse, lengths 1..40,
5 post-LN blocks, width 64, 8 heads, batch 128).
"""

import dataclasses
import os
import sys
import time

import jax
import numpy as np

from pe_jax import runtime
from pe_jax.benchmark import ReferenceModel
from pe_jax.training import make_mesh, make_train_program, model_keys

SIDES = (("A_previous", "per_example", "xla"), ("B_today", "per_batch", "cpu"))
STEPS = 20  # steps per timing
FIRST = 1000  # first timed step (after warm-up)


def _side(reference: ReferenceModel, encoding: str, sampling: str, impl: str, mesh) -> dict:
    s = reference.settings(encoding)
    model = dataclasses.replace(s.model, attention_impl=impl)
    s = dataclasses.replace(s, length_sampling=sampling, model=model)
    program = make_train_program(s, mesh)
    keys = model_keys(s)
    state = program.init(keys)
    for t in range(30 if sampling == "per_batch" else 2):  # compiles every bucket used
        state, _ = program.step(state, keys, np.int32(t))
    jax.block_until_ready(state)
    return {"program": program, "keys": keys, "state": state, "times": []}


def main(encoding: str = "rope", rounds: int = 5) -> None:
    runtime.configure(cache_dir="")
    mesh = make_mesh()
    reference = ReferenceModel()
    with jax.set_mesh(mesh):
        sides = {name: _side(reference, encoding, *rest, mesh) for name, *rest in SIDES}
        for r in range(rounds):
            span = range(FIRST + r * STEPS, FIRST + (r + 1) * STEPS)
            for side in sides.values():
                program, keys, state = side["program"], side["keys"], side["state"]
                start = time.perf_counter()
                for t in span:
                    state, metrics = program.step(state, keys, np.int32(t))
                jax.block_until_ready((state, metrics))
                side["times"].append(time.perf_counter() - start)
                side["state"] = state
        rates = {}
        for name, side in sides.items():
            useful = [
                sum(
                    int(side["program"].batch(side["keys"][0], t).valid.sum())
                    for t in range(FIRST + r * STEPS, FIRST + (r + 1) * STEPS)
                )
                for r in range(rounds)
            ]
            rates[name] = float(np.median(np.divide(useful, side["times"])))
            step_ms = np.median(side["times"]) / STEPS * 1e3
            print(
                f"{encoding} {name}: {step_ms:.1f} ms/step, useful tokens/s {rates[name]:.0f}, "
                f"{side['program'].traces[0]} training program(s)"
            )
    ratio = rates["B_today"] / rates["A_previous"]
    flags = os.environ.get("XLA_FLAGS")
    print(f"{encoding}: B/A useful tokens/s {ratio:.2f}x (XLA_FLAGS={flags!r})")


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["rope"]), *([int(sys.argv[2])] if len(sys.argv) > 2 else []))
