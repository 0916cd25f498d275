"""The science workload: K models of a protocol trained side by side, pe_jax against
x-transformers, on the batches and lengths a sweep's run trains.

A sweep's run trains K = seeds x learning rates models of one architecture. Each protocol:
- encoder: the reference model (`ReferenceModel`, dropout 0) with one length per step for the
  whole batch (`length_sampling="per_batch"`, buckets of `bucket_multiple` slots), as the
  encoder protocol's runs train;
- decoder: the model, task, lengths, batch and optimizer of one run of the decoder protocol's
  sweep config (configs/sweeps/kazemnejad.py by default), as `settings_from_config` reads them:
  its own length sampling (a length per example, padded to the training width).

Sides, interleaved per round (A B C A B C ...), each training every model `steps` steps:
- pe_jax: the runner's program (`make_train_program`) of K models in one program, batches
  sampled on device inside the step, state donated; the buckets the timed steps use are
  compiled in the warm-up, whose time is reported.
- x-transformers: K networks (`make_peer_net`) trained one after another, each on the batches
  its seed's pe_jax models train (`TrainProgram.batch`), cropped to the longest real example
  (its exact width), made and moved to the device before the timing, without the padding mask
  where it changes nothing (`needs_mask`); eager, and under `torch.compile(dynamic=True)`
  (one graph for every width, shared by the K networks; its compilation is the warm-up's time,
  reported and excluded from the rates, and recompilations in the timed rounds are counted).

Rates, medians over rounds of wall and CPU (`time.process_time`, every thread of the process)
time: model-steps/s (K x steps / seconds) and useful tokens/s (the real, non-padding tokens
trained, summed over the models; the same count on both sides).
"""

from __future__ import annotations

import importlib.metadata
import statistics
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax.benchmark._config import BenchmarkConfig
from pe_jax.benchmark._peers import make_peer_net, make_trainer, needs_mask, peer_tensors
from pe_jax.benchmark._science_runs import (
    check_device,
    decoder_settings,
    describe,
    encoder_settings,
)
from pe_jax.benchmark._science_summary import best_peer_ratio
from pe_jax.training import Settings, make_mesh, make_train_program, model_keys

FIELDS = ("inputs", "targets", "valid", "loss_mask")


def _exact_width(valid: np.ndarray) -> int:
    """The slots of the longest real example (real tokens come first in every layout)."""
    return int(valid.sum(axis=1).max())


def workload(program, settings: Settings, steps: Sequence[int]) -> dict[str, Any]:
    """The batches of `steps` for each seed, as pe_jax's models train them and as the peer does.

    Returns:
      {"keys": model keys [K], "seed_of_model": [K] seed index of each model, "batches":
       {(seed index, step): NumPy `Batch` at pe_jax's width}, "pe_jax_widths" / "peer_widths"
       / "useful" / "slots": [steps][seeds] width trained, exact width, real tokens, slots}.
    """
    keys = model_keys(settings)
    rates = len(settings.rates)
    seeds = len(settings.seeds)
    batches = {
        (s, t): jax.tree.map(np.asarray, program.batch(keys[s * rates], t))
        for s in range(seeds)
        for t in steps
    }
    per = {
        name: [[fn(batches[(s, t)]) for s in range(seeds)] for t in steps]
        for name, fn in (
            ("pe_jax_widths", lambda b: int(b.inputs.shape[1])),
            ("peer_widths", lambda b: _exact_width(b.valid)),
            ("useful", lambda b: int(b.valid.sum())),
            ("slots", lambda b: int(b.valid.size)),
        )
    }
    seed_of_model = [m // rates for m in range(len(settings.models))]
    return {"keys": keys, "seed_of_model": seed_of_model, "batches": batches, **per}


def side_rates(
    wall_s: Sequence[float],
    cpu_s: Sequence[float],
    useful: Sequence[int],
    *,
    model_steps: int,
) -> dict[str, Any]:
    """Rates of one side from its rounds: model-steps and useful tokens per wall / CPU second.

    model_steps_per_s = model_steps / median(wall_s) (and per CPU second likewise); the
    token rates are medians over rounds of useful[r] / seconds[r].
    """
    wall, cpu = statistics.median(wall_s), statistics.median(cpu_s)
    return {
        "wall_s": list(wall_s),
        "cpu_s": list(cpu_s),
        "median_wall_s": wall,
        "median_cpu_s": cpu,
        "model_steps_per_s": model_steps / wall,
        "model_steps_per_cpu_s": model_steps / cpu,
        "useful_tokens_per_s": statistics.median(
            u / w for u, w in zip(useful, wall_s, strict=True)
        ),
        "useful_tokens_per_cpu_s": statistics.median(
            u / c for u, c in zip(useful, cpu_s, strict=True)
        ),
    }


def _pe_jax_side(program, state, keys) -> Callable[[Sequence[int]], None]:
    box = {"state": state}

    def run(span: Sequence[int]) -> None:
        state = box["state"]
        for t in span:
            state, metrics = program.step(state, keys, np.int32(t))
        jax.block_until_ready((state, metrics))
        box["state"] = state

    return run


def _graphs() -> int | None:
    """Graphs torch.compile has built in this process (dynamo's counter; None if absent)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return None
    return int(counters["stats"]["unique_graphs"])


def _peer_side(settings: Settings, work: dict, *, compile: bool, device: str):
    """K x-transformers networks trained one after another on their seed's exact batches."""
    import torch

    causal = settings.model.causal
    tensors = {}
    for key, b in work["batches"].items():
        width = _exact_width(b.valid)
        cropped = types.SimpleNamespace(**{f: getattr(b, f)[:, :width] for f in FIELDS})
        on_device = tuple(x.to(device) for x in peer_tensors(cropped))
        tensors[key] = (on_device, needs_mask(cropped.valid, causal=causal))
    trainers = []
    for m, (_, rate) in enumerate(settings.models):
        torch.manual_seed(m)
        net = make_peer_net(
            settings.model, max_seq_len=settings.train_width, attn_flash=device == "cuda"
        ).to(device)
        autocast = "cuda" if device == "cuda" and settings.model.dtype == jnp.bfloat16 else None
        trainers.append(
            make_trainer(
                net,
                learning_rate=rate,
                clip_norm=settings.optimizer.get("clip_norm"),
                compile=compile,
                autocast=autocast,
            )
        )

    def run(span: Sequence[int]) -> None:
        for m, train in enumerate(trainers):
            seed = work["seed_of_model"][m]
            for t in span:
                batch, mask = tensors[(seed, t)]
                loss = train(batch, mask=mask)
            loss.item()  # waits for the device

    return run


def _time_rounds(sides: dict[str, Callable], spans, log, label: str) -> dict[str, dict]:
    times = {name: {"wall": [], "cpu": []} for name in sides}
    for r, span in enumerate(spans):
        for name, run in sides.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run(span)
            times[name]["cpu"].append(time.process_time() - cpu)
            times[name]["wall"].append(time.perf_counter() - wall)
        log(f"science {label} round {r + 1}/{len(spans)} done")
    return times


def time_protocol(
    settings: Settings,
    *,
    rounds: int,
    steps: int,
    peers: bool,
    compile: bool,
    device: str = "cpu",
    first_step: int = 1000,
    log: Callable[[str], None] = print,
    label: str = "",
) -> dict[str, Any]:
    """One protocol's K models: pe_jax's one program against x-transformers (see the module).

    Args:
      settings: the run (`encoder_settings` or `decoder_settings`).
      rounds, steps: timed rounds; steps of every model per side per round.
      peers: time x-transformers too (eager, and compiled with `compile`).
      device: the peer's PyTorch device ("cpu" or "cuda").
      first_step: the first timed step (round r trains steps first + r*steps ...).

    Returns:
      {"run": the run's description, "rounds", "steps", "schedule": {"steps",
       "pe_jax_widths", "peer_widths"} ([steps][seeds]), "useful_tokens" and "slot_tokens"
       per round (summed over the models), "sides": {name: `side_rates` + "warmup_s"},
       "best_peer", "ratio"} where ratio is pe_jax's model-steps/s over the best peer's.
    """
    spans = [range(first_step + r * steps, first_step + (r + 1) * steps) for r in range(rounds)]
    timed = [t for span in spans for t in span]
    k = len(settings.models)
    with jax.set_mesh(make_mesh()):
        program = make_train_program(settings, make_mesh())
        work = workload(program, settings, timed)
        keys = work["keys"]
        state = program.init(keys)
        start = time.perf_counter()
        first_of_width = {}
        for i, t in enumerate(timed):
            first_of_width.setdefault(work["pe_jax_widths"][i][0], t)
        for t in first_of_width.values():  # compile every bucket the timed steps use
            state, metrics = program.step(state, keys, np.int32(t))
        jax.block_until_ready((state, metrics))
        sides = {"pe_jax": _pe_jax_side(program, state, keys)}
        warmup = {"pe_jax": time.perf_counter() - start}
        variants = [("x_transformers", False), ("x_transformers_compiled", True)]
        variants = variants[: (1 + compile) * peers]
        graphs = {}
        for name, compiled in variants:
            before = _graphs()
            start = time.perf_counter()
            run = _peer_side(settings, work, compile=compiled, device=device)
            run(spans[0][:1])  # warm-up: every network's first step (the compilation)
            warmup[name] = time.perf_counter() - start
            graphs[name] = None if before is None else _graphs() - before
            sides[name] = run
        before = _graphs()
        times = _time_rounds(sides, spans, log, label)
        recompiled = None if before is None else _graphs() - before
    index = {t: i for i, t in enumerate(timed)}
    model_seeds = work["seed_of_model"]

    def per_round(key: str) -> list[int]:
        return [sum(work[key][index[t]][s] for t in span for s in model_seeds) for span in spans]

    useful = per_round("useful")
    out_sides = {}
    for name, t in times.items():
        out_sides[name] = {
            **side_rates(t["wall"], t["cpu"], useful, model_steps=k * steps),
            "warmup_s": warmup[name],
        }
    if "x_transformers_compiled" in out_sides:  # graphs built in the warm-up, then after it
        out_sides["x_transformers_compiled"]["graphs_compiled"] = graphs["x_transformers_compiled"]
        out_sides["x_transformers_compiled"]["recompiles_in_timed_rounds"] = recompiled
    best, ratio = best_peer_ratio({"sides": out_sides})
    return {
        "run": describe(settings),
        "rounds": rounds,
        "steps": steps,
        "schedule": {
            "steps": timed,
            "pe_jax_widths": work["pe_jax_widths"],
            "peer_widths": work["peer_widths"],
        },
        "useful_tokens": useful,
        "slot_tokens": per_round("slots"),
        "sides": out_sides,
        "best_peer": best,
        "ratio": ratio,
    }


def science_section(
    config: BenchmarkConfig,
    *,
    peer_reason: str | None,
    threads: int | None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every protocol of `config.science` (see `time_protocol`), with the peer's facts.

    Args:
      peer_reason: None when torch and x-transformers import, else why not (the peer sides
        are then skipped and the reason recorded).
      threads: PyTorch intra-op threads (None: PyTorch's default).
    """
    check_device(config)
    science = config.science
    device = "cuda" if science.device == "gpu" else "cpu"
    peers = peer_reason is None
    facts: dict[str, Any] = {"peers_available": peers, "peer_message": peer_reason}
    if peers:
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        facts.update(
            torch_version=torch.__version__,
            torch_threads=torch.get_num_threads(),
            x_transformers_version=importlib.metadata.version("x-transformers"),
            peer_device=device,
            peer_flash=device == "cuda",
        )
    builders = {
        "encoder": lambda: encoder_settings(config.model, science),
        "decoder": lambda: decoder_settings(science),
    }
    protocols = {}
    for name in science.protocols:
        protocols[name] = time_protocol(
            builders[name](),
            rounds=science.rounds,
            steps=science.steps,
            peers=peers,
            compile=science.compile,
            device=device,
            log=log,
            label=name,
        )
        row = protocols[name]
        log(
            f"science {name}: K={row['run']['num_models']}, model-steps/s "
            + ", ".join(f"{n} {s['model_steps_per_s']:.3g}" for n, s in row["sides"].items())
        )
    setup = (
        "K models per protocol (seeds x learning rates) for `steps` steps a round; pe_jax: "
        f"the runner's program of all K, seed_loop {science.seed_loop}, {science.dtype}, "
        f"{jax.default_backend()}; x-transformers: the K networks one after another on the "
        f"same batches cropped to their exact width, {device}, eager"
        f"{' and torch.compile(dynamic=True)' if science.compile else ''}"
        f"{', flash attention' if device == 'cuda' else ''}, threads {facts.get('torch_threads')}"
        f"; interleaved, medians of {science.rounds} rounds of {science.steps} steps"
    )
    return {"setup": setup, **facts, "protocols": protocols}
