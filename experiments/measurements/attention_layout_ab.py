"""Before/after per-op profile and step time of the CPU attention's heads-major products.

Before: `pe_jax/nn/_cpu_attention.py` at commit 1a11790 (einsums over [B, L, H, K] operands);
after: the working tree's (`_bmm`). Both run in this one process, interleaved (A B A B), on the
benchmark's reference model (5 post-LN blocks, width 64, 8 heads, batch 128 x 80 slots):

  XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_multi_thread_eigen=false" \
      taskset -c 1 python experiments/measurements/attention_layout_ab.py none rope alibi
"""

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

import pe_jax.nn._attention as attention
from pe_jax.benchmark._model import ReferenceModel, build_program, profile_train_step
from pe_jax.training import make_mesh

BEFORE = "1a11790"


def _old_attention():
    text = subprocess.run(
        ["git", "show", f"{BEFORE}:pe_jax/nn/_cpu_attention.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(text)
    spec = importlib.util.spec_from_file_location("cpu_attention_before", f.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cpu_attention


def _step_ms(model, encoding, sides, rounds=4, steps=3):
    programs = {}
    with jax.set_mesh(make_mesh()):
        for side, fn in sides.items():
            attention.cpu_attention = fn
            program, state, keys = build_program(model, encoding)
            state, _ = program.step(state, keys, jnp.int32(0))
            programs[side] = [program, jax.block_until_ready(state), keys]
        times = {side: [] for side in sides}
        for _ in range(rounds):
            for side in sides:
                program, state, keys = programs[side]
                start = time.perf_counter()
                for i in range(steps):
                    state, _ = program.step(state, keys, jnp.int32(1 + i))
                jax.block_until_ready(state)
                times[side].append((time.perf_counter() - start) / steps * 1e3)
                programs[side][1] = state
    return {side: statistics.median(t) for side, t in times.items()}


def main(encodings):
    sides = {"before": _old_attention(), "after": attention.cpu_attention}
    model = ReferenceModel()
    print("| encoding | before ms/step | after ms/step | speed-up |\n|---|---|---|---|")
    for encoding in encodings:
        ms = _step_ms(model, encoding, sides)
        print(
            f"| {encoding} | {ms['before']:.0f} | {ms['after']:.0f} | "
            f"{ms['before'] / ms['after']:.2f}x |",
            flush=True,
        )
    profiles = {side: [] for side in sides}
    for _ in range(2):
        for side, fn in sides.items():
            attention.cpu_attention = fn
            profiles[side].append(profile_train_step(model, encodings[0], steps=3))
    for side in sides:
        p = min(profiles[side], key=lambda p: p["ms_per_step"])
        print(f"\n{side} ({encodings[0]}): {p['ms_per_step']:.0f} ms of ops a step (faster of 2)")
        print("| kind | attention-sized | ms a step | ops |\n|---|---|---|---|")
        for k in p["kinds"]:
            print(
                f"| {k['kind']} | {'yes' if k['attention_sized'] else 'no'} | "
                f"{k['ms']:.1f} | {k['ops']} |"
            )
        print("\n| copy output shape | ms a step | ops |\n|---|---|---|")
        for c in p["copies"][:6]:
            print(f"| {c['shape']} | {c['ms']:.1f} | {c['ops']} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["none"])
