"""pe_jax against x-transformers, side by side in one process, the sides interleaved.

Set-up of each side (the same model and batch shape; see `ReferenceModel`):
- pe_jax: the runner's jitted training step (`make_train_program`), batch sampled on device
  inside the step, state donated from step to step; its attention kernel is the backend's
  default (`attention_impl="auto"`).
- x-transformers: `TransformerWrapper(Encoder(...))` with the same architecture, Adam and
  gradient clipping, the batch made once outside the timed step; with and without
  `attn_flash` (PyTorch's fused `scaled_dot_product_attention`), and under `torch.compile`
  (default mode, plain attention; its compilation is timed apart, in the warm-up).
- Dropout is 0 on both sides: pe_jax has residual and embedding dropout, x-transformers also
  attention dropout, so equal rates would not be equal work.

Each round times `steps_per_run` steps of every (encoding, side) in turn (A B C A B C ...), so
a change of machine load hits every side alike; the figure is the median over rounds.
"""

from __future__ import annotations

import dataclasses
import time
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax.benchmark._model import ReferenceModel, build_program
from pe_jax.benchmark._peers import make_peer_step
from pe_jax.training import make_mesh, make_train_program, seed_keys


def _ours(model: ReferenceModel, encoding: str):
    program, state, keys = build_program(model, encoding)
    box = {"state": state, "step": 0}

    def run(steps: int) -> None:
        state = box["state"]
        for _ in range(steps):
            box["step"] += 1
            state, metrics = program.step(state, keys, jnp.int32(box["step"]))
        jax.block_until_ready((state, metrics))
        box["state"] = state

    return run


def _theirs(
    model: ReferenceModel,
    encoding: str,
    *,
    attn_flash: bool,
    threads: int | None,
    compile: bool = False,
):
    step, info = make_peer_step(
        model, encoding, attn_flash=attn_flash, threads=threads, compile=compile
    )

    def run(steps: int) -> None:
        for _ in range(steps):
            loss = step()
        loss.item()

    return run, info


def compare_with_peer(
    model: ReferenceModel,
    encodings: tuple[str, ...],
    *,
    rounds: int,
    steps_per_run: int,
    threads: int | None = None,
    compile: bool = True,
    log=print,
) -> dict[str, Any]:
    """Interleaved step times of pe_jax and x-transformers (plain, flash, compiled) per encoding.

    Args:
      model: the reference model; its dropout is set to 0 for both sides.
      encodings: names in `PEER_OPTIONS` (none, rope, alibi, t5).
      rounds: timed rounds; every round times every side once.
      steps_per_run: steps per timing.
      threads: PyTorch intra-op threads (None: its default).
      compile: also time x-transformers under `torch.compile` (default mode; the batch's
        shape is fixed, so it compiles once, in the warm-up, whose time is reported).
      log: progress lines.

    Returns:
      {"setup": text, "rounds", "steps_per_run", "rows": [{"encoding", "pe_jax_step_s",
       "x_transformers_step_s", "x_transformers_flash_step_s",
       "x_transformers_compiled_step_s", "x_transformers_compile_s", "ratio", "ratio_flash",
       "ratio_compiled"}]} where a ratio is pe_jax tokens/s over the peer's (> 1: pe_jax
      faster); the flash entries are None where x-transformers refuses flash attention (T5's
      bias), the compiled ones None without `compile`.
    """
    model = dataclasses.replace(model, dropout=0.0)
    sides: dict[tuple[str, str], Any] = {}
    info: dict[str, Any] = {}
    with jax.set_mesh(make_mesh()):
        for encoding in encodings:
            sides[(encoding, "pe_jax")] = _ours(model, encoding)
            variants = [(False, False, "x_transformers"), (True, False, "x_transformers_flash")]
            variants += [(False, True, "x_transformers_compiled")] if compile else []
            for flash, compiled, name in variants:
                try:
                    sides[(encoding, name)], info = _theirs(
                        model, encoding, attn_flash=flash, threads=threads, compile=compiled
                    )
                except AssertionError as error:  # e.g. flash refuses T5's bias
                    log(f"x-transformers {encoding} attn_flash={flash}: {error}")
        warmup_s = {}
        for key, run in sides.items():  # compile / warm up every side first
            start = time.perf_counter()
            run(1)
            warmup_s[key] = time.perf_counter() - start
        times: dict[tuple[str, str], list[float]] = {key: [] for key in sides}
        for r in range(rounds):
            for key, run in sides.items():
                start = time.perf_counter()
                run(steps_per_run)
                times[key].append((time.perf_counter() - start) / steps_per_run)
            log(f"compare round {r + 1}/{rounds} done")
    rows = []
    for encoding in encodings:
        med = {
            side: float(np.median(times[(encoding, side)])) if (encoding, side) in times else None
            for side in (
                "pe_jax",
                "x_transformers",
                "x_transformers_flash",
                "x_transformers_compiled",
            )
        }
        flash, compiled = med["x_transformers_flash"], med["x_transformers_compiled"]
        rows.append(
            {
                "encoding": encoding,
                "pe_jax_step_s": med["pe_jax"],
                "x_transformers_step_s": med["x_transformers"],
                "x_transformers_flash_step_s": flash,
                "x_transformers_compiled_step_s": compiled,
                "x_transformers_compile_s": warmup_s.get((encoding, "x_transformers_compiled")),
                "ratio": med["x_transformers"] / med["pe_jax"],
                "ratio_flash": None if flash is None else flash / med["pe_jax"],
                "ratio_compiled": None if compiled is None else compiled / med["pe_jax"],
            }
        )
    setup = (
        f"batch {model.batch_size} x {model.train_width} slots, {model.num_layers} post-LN blocks, "
        f"width {model.width}, {model.num_heads} heads, dropout 0 on both sides; pe_jax: jitted "
        f"step with on-device sampling, attention_impl auto ({jax.default_backend()}); "
        f"x-transformers: same architecture, batch made once, torch {info.get('torch_version')} "
        f"with {info.get('torch_threads')} threads, attn_flash False and True"
        f"{', and torch.compile (default mode, its compilation in the warm-up)' if compile else ''}"
        f"; sides interleaved "
        f"per round, median of {rounds} rounds of {steps_per_run} steps"
    )
    return {"setup": setup, "rounds": rounds, "steps_per_run": steps_per_run, "rows": rows}


def _rate(counts: dict[int, int], spans, seconds) -> float:
    """Median over rounds of tokens per second (counts: tokens of each step)."""
    return float(
        np.median([sum(counts[t] for t in sp) / x for sp, x in zip(spans, seconds, strict=True)])
    )


def compare_on_workload(
    model: ReferenceModel,
    encodings: tuple[str, ...],
    *,
    rounds: int,
    steps_per_run: int,
    first_step: int = 1000,
    threads: int | None = None,
    log=print,
) -> dict[str, Any]:
    """Useful tokens/s of pe_jax and x-transformers on the encoder protocol's own workload.

    Both sides train the same sequence of batches: pe_jax's runner draws one length per step
    (`length_sampling="per_batch"`, widths in buckets of 16, one program per bucket, compiled
    before timing); x-transformers gets each of those batches cropped to its exact width (an
    eager PyTorch step compiles nothing, so an exact width is its best setting), plain and with
    `attn_flash`. Dropout 0 on both sides. Useful tokens are the real (non-padding) slots, the
    same on both sides; sides interleaved per round over the same steps, medians of rounds.

    Returns:
      {"setup", "rounds", "steps_per_run", "rows": [{"encoding", "pe_jax_useful_tokens_per_s",
       "pe_jax_slot_tokens_per_s", "x_transformers_useful_tokens_per_s",
       "x_transformers_flash_useful_tokens_per_s", "ratio", "ratio_flash"}]} where a ratio is
      pe_jax's useful tokens/s over the peer's (> 1: pe_jax faster).
    """
    from pe_jax.benchmark._peers import make_peer_trainer, peer_tensors

    model = dataclasses.replace(model, dropout=0.0)
    spans = [
        range(first_step + r * steps_per_run, first_step + (r + 1) * steps_per_run)
        for r in range(rounds)
    ]
    rows, info = [], {}
    with jax.set_mesh(make_mesh()):
        for encoding in encodings:
            s = model.settings(encoding)
            s = dataclasses.replace(s, length_sampling="per_batch")
            program = make_train_program(s, make_mesh())
            keys = seed_keys(s.seeds)
            state = program.init(keys)
            batches = {
                t: jax.tree.map(np.asarray, program.batch(keys[0], t)) for sp in spans for t in sp
            }
            useful = {t: int(b.valid.sum()) for t, b in batches.items()}
            slots = {t: int(b.valid.size) for t, b in batches.items()}
            first_of_width = {}
            for t, b in batches.items():
                first_of_width.setdefault(b.inputs.shape[1], t)
            for t in first_of_width.values():  # compile every bucket the timed steps use
                state, metrics = program.step(state, keys, jnp.int32(t))
            jax.block_until_ready(state)
            box = {"state": state}

            def ours(span, box=box, program=program, keys=keys):
                state = box["state"]
                for t in span:
                    state, metrics = program.step(state, keys, jnp.int32(t))
                jax.block_until_ready((state, metrics))
                box["state"] = state

            exact = {}
            for t, b in batches.items():
                width = int(b.valid.any(0).sum())
                fields = ("inputs", "targets", "valid", "loss_mask")
                cropped = types.SimpleNamespace(**{f: getattr(b, f)[:, :width] for f in fields})
                exact[t] = peer_tensors(cropped)
            sides = {"pe_jax": ours}
            for flash, name in ((False, "x_transformers"), (True, "x_transformers_flash")):
                try:
                    train, info = make_peer_trainer(
                        model, encoding, attn_flash=flash, threads=threads
                    )
                except AssertionError as error:  # flash refuses T5's bias
                    log(f"workload x-transformers {encoding} attn_flash={flash}: {error}")
                    continue

                def theirs(span, train=train, exact=exact):
                    for t in span:
                        loss = train(exact[t])
                    loss.item()

                theirs(spans[0][:2])  # warm-up
                sides[name] = theirs
            times = {name: [] for name in sides}
            for r, span in enumerate(spans):
                for name, run in sides.items():
                    start = time.perf_counter()
                    run(span)
                    times[name].append(time.perf_counter() - start)
                log(f"workload {encoding} round {r + 1}/{rounds} done")
            rate = {name: _rate(useful, spans, ts) for name, ts in times.items()}
            slot_rate = _rate(slots, spans, times["pe_jax"])
            flash = rate.get("x_transformers_flash")
            rows.append(
                {
                    "encoding": encoding,
                    "pe_jax_useful_tokens_per_s": rate["pe_jax"],
                    "pe_jax_slot_tokens_per_s": slot_rate,
                    "x_transformers_useful_tokens_per_s": rate["x_transformers"],
                    "x_transformers_flash_useful_tokens_per_s": flash,
                    "ratio": rate["pe_jax"] / rate["x_transformers"],
                    "ratio_flash": None if flash is None else rate["pe_jax"] / flash,
                    "useful_fraction": sum(useful.values()) / sum(slots.values()),
                }
            )
    setup = (
        f"{model.task}, lengths {1}..{model.max_length} one per step (the encoder protocol), "
        f"batch {model.batch_size}, {model.num_layers} post-LN blocks, width {model.width}, "
        f"{model.num_heads} heads, dropout 0; pe_jax: per_batch buckets of 16 slots, one "
        f"program each, attention_impl auto ({jax.default_backend()}); x-transformers: the same "
        f"batches cropped to their exact width, torch {info.get('torch_version')} with "
        f"{info.get('torch_threads')} threads, attn_flash False and True; interleaved per round, "
        f"median of {rounds} rounds of {steps_per_run} steps"
    )
    return {"setup": setup, "rounds": rounds, "steps_per_run": steps_per_run, "rows": rows}
