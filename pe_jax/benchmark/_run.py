"""The benchmark: presets, the sections in order, and the JSON document they produce."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from pe_jax._names import did_you_mean
from pe_jax.benchmark._compare import compare_on_workload, compare_with_peer
from pe_jax.benchmark._config import DEFAULT_SECTIONS, SECTIONS, BenchmarkConfig
from pe_jax.benchmark._eval import eval_levers, eval_sweep
from pe_jax.benchmark._jobs import sweep_jobs
from pe_jax.benchmark._kernels import bias_rows, copy_floor, matmul_floor, rope_rows
from pe_jax.benchmark._memory import MemoryRequest, forward_memory
from pe_jax.benchmark._model import profile_train_step, time_train_step
from pe_jax.benchmark._peers import best_threads, peers_available
from pe_jax.benchmark._science import science_section
from pe_jax.benchmark._science_runs import check_device
from pe_jax.benchmark._summary import check_targets
from pe_jax.benchmark._timing import load_average, machine_info


def _train_section(c: BenchmarkConfig, log) -> dict[str, Any]:
    rows = []
    for i, encoding in enumerate(c.train_encodings):
        try:
            row = time_train_step(
                c.model,
                encoding,
                repeats=c.repeats,
                steps_per_run=c.steps_per_run,
                dispatch_steps=c.dispatch_steps if i == 0 else 0,
                log_every=c.log_every,
            )
        except Exception as error:  # one broken encoding must not lose the others' figures
            row = {"encoding": encoding, "error": f"{type(error).__name__}: {error}"}
        rows.append(row)
        log(f"train {encoding}: {_brief(row, 'step_s')}")
    baseline = next((r for r in rows if r["encoding"] == "none" and "error" not in r), None)
    for row in rows:
        if baseline is not None and "error" not in row:
            row["relative_to_none"] = row["step_s"] / baseline["step_s"]
    model = dataclasses.asdict(c.model)
    model.update(train_width=c.model.train_width, tokens_per_step=c.model.tokens_per_step)
    return {"model": model, "rows": rows, "dispatch": rows[0].pop("dispatch", None)}


def _seeds_section(c: BenchmarkConfig, train: dict | None, log) -> list[dict[str, Any]]:
    """S seeds in one program, per seed loop ("vmap", "map"), vs S sequential 1-seed runs."""
    measured = {r["encoding"]: r for r in (train or {}).get("rows", []) if "error" not in r}
    single = measured.get(c.seed_encoding)  # the same program as S = 1: not timed again
    if single is None:
        single = time_train_step(
            c.model, c.seed_encoding, repeats=c.repeats, steps_per_run=c.steps_per_run
        )
    rows = []
    for seed_loop in c.seed_loops:
        for count in c.seed_counts:
            if count == 1:
                row = {**single, "seed_loop": seed_loop}
            else:
                row = time_train_step(
                    c.model,
                    c.seed_encoding,
                    num_seeds=count,
                    seed_loop=seed_loop,
                    repeats=c.repeats,
                    steps_per_run=c.steps_per_run,
                )
                log(f"seeds {count} {seed_loop}: {row['step_s']:.3f} s/step")
            # S sequential runs process S x the tokens in S x the single-seed step time.
            row["sequential_tokens_per_s"] = single["tokens_per_s"]
            row["speedup_vs_sequential"] = row["tokens_per_s"] / single["tokens_per_s"]
            rows.append(row)
    return rows


def _memory_section(c: BenchmarkConfig, log) -> dict[str, Any]:
    run_batch = c.memory_run_batch
    if run_batch is None:
        on_cpu = jax.default_backend() == "cpu"
        run_batch = c.memory_cpu_run_batch if on_cpu else c.memory_analysis_batch
    request = MemoryRequest(
        model=dataclasses.asdict(c.model),
        length=c.memory_length,
        analysis_batch=c.memory_analysis_batch,
        run_batch=run_batch,
    )
    rows = []
    for encoding in c.memory_encodings:
        row = forward_memory(encoding, request, timeout_s=c.subprocess_timeout_s)
        rows.append(row)
        log(f"memory {encoding}: {_brief(row, 'temp_bytes')}")
    none = next((r for r in rows if r["encoding"] == "none" and "error" not in r), None)
    for row in rows:
        if none is not None and "error" not in row:
            row["extra_temp_bytes"] = row["temp_bytes"] - none["temp_bytes"]
            row["extra_rss_bytes"] = row["forward_rss_bytes"] - none["forward_rss_bytes"]
    one_bias = c.model.num_heads * c.memory_length**2 * 4
    return {
        "length": c.memory_length,
        "analysis_batch": c.memory_analysis_batch,
        "run_batch": run_batch,
        "one_bias_bytes": one_bias,
        "rows": rows,
    }


def _peers_section(c: BenchmarkConfig, log) -> dict[str, Any]:
    reason = peers_available()
    if reason is not None:
        log(f"peers {reason}")
        return {"available": False, "message": reason, "rows": []}
    threads = best_threads(c.model, repeats=c.repeats, steps_per_run=c.steps_per_run)
    log(f"peer threads: {threads}")
    shared = dict(rounds=c.repeats, threads=threads["best"], log=log)
    result = compare_with_peer(
        c.model,
        tuple(c.peer_encodings),
        steps_per_run=c.steps_per_run,
        compile=c.peer_compile,
        **shared,
    )
    for row in result["rows"]:
        flash = row["x_transformers_flash_step_s"]
        compiled = row["x_transformers_compiled_step_s"]
        log(
            f"peer {row['encoding']}: pe_jax {row['pe_jax_step_s']:.3f} s/step, x-transformers "
            f"{row['x_transformers_step_s']:.3f} (flash "
            f"{'refused' if flash is None else f'{flash:.3f}'}, compiled "
            f"{'-' if compiled is None else f'{compiled:.3f}'})"
        )
    result["workload"] = compare_on_workload(
        c.model, tuple(c.peer_encodings), steps_per_run=c.workload_steps, **shared
    )
    for row in result["workload"]["rows"]:
        log(
            f"workload {row['encoding']}: pe_jax / x-transformers useful tokens/s "
            f"{row['ratio']:.2f}"
        )
    import importlib.metadata

    version = importlib.metadata.version("x-transformers")
    return {"available": True, "x_transformers_version": version, "threads": threads, **result}


def _science_section(c: BenchmarkConfig, peers: dict | None, log) -> dict[str, Any]:
    """The science section; the peer's threads: the preset's, the peers section's, or timed."""
    reason = peers_available()
    threads = c.science.threads
    if threads is None and peers and peers.get("available"):
        threads = peers["threads"]["best"]
    if threads is None and reason is None and c.science.device == "cpu":
        threads = best_threads(c.model, repeats=c.repeats, steps_per_run=c.steps_per_run)["best"]
    if reason is not None:
        log(f"science peers {reason}")
    return science_section(c, peer_reason=reason, threads=threads, log=log)


def _brief(row: dict, key: str) -> str:
    return row["error"] if "error" in row else f"{row[key]:.4g}"


def check_sections(sections) -> tuple[str, ...]:
    """`sections` as a tuple when each is one of `SECTIONS`.

    Raises:
      ValueError: an unknown section, with the close names.
    """
    for section in sections:
        if section not in SECTIONS:
            raise ValueError(
                f"sections: unknown section {section!r}.{did_you_mean(section, SECTIONS)} "
                f"Sections: {', '.join(SECTIONS)}."
            )
    return tuple(sections)


def run_benchmark(
    config: BenchmarkConfig,
    *,
    sections: tuple[str, ...] = DEFAULT_SECTIONS,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Runs the chosen sections in order and returns the JSON-ready results.

    Args:
      config: sizes (`BenchmarkConfig.preset("full" | "quick" | "tiny")`).
      sections: a subset of SECTIONS ("rope" and "bias" use the copy floor, "train" the matmul
        floor, "science" the peers section's thread count, each only when that section ran).
      log: where progress lines go.

    Returns:
      {"machine", "config", "sections", "floors", "rope", "bias", "train", "profile", "seeds",
      "sweep", "memory", "peers", "science", "targets", "load_average_end", "wall_s"};
      sections not run are absent.

    Raises:
      ValueError: an unknown section name; a GPU preset without a GPU (`check_device`).
    """
    check_sections(sections)
    check_device(config)
    start = time.perf_counter()
    out: dict[str, Any] = {
        "machine": machine_info(),
        "config": _jsonable(dataclasses.asdict(config)),
        "sections": list(sections),
    }
    log(
        f"machine: {out['machine']['backend']} {out['machine']['device_kind']}, load "
        f"{out['machine']['load_average']}"
    )
    copy_rate = None
    if "floors" in sections:
        copy = copy_floor(elements=config.copy_elements, repeats=config.repeats)
        matmul = matmul_floor(size=config.matmul_size, repeats=config.repeats)
        out["floors"] = {"copy": copy, "matmul": matmul}
        copy_rate = copy["bytes_per_s"]
        log(
            f"floors: copy {copy_rate / 1e9:.2f} GB/s, matmul {matmul['flops_per_s'] / 1e9:.1f} "
            "GFLOP/s"
        )
    rate = copy_rate or float("nan")
    if "rope" in sections:
        out["rope"] = rope_rows(
            shape=config.rope_shape, repeats=config.repeats, copy_bytes_per_s=rate
        )
        log(
            "rope: "
            + ", ".join(
                f"{r['dtype']}/{r['layout']} {r['fraction_of_copy']:.2f}" for r in out["rope"]
            )
        )
    if "bias" in sections:
        out["bias"] = bias_rows(
            lengths=config.bias_lengths,
            num_heads=config.bias_heads,
            repeats=config.repeats,
            copy_bytes_per_s=rate,
        )
        log("bias done")
    if "train" in sections:
        out["train"] = _train_section(config, log)
        matmul_rate = out.get("floors", {}).get("matmul", {}).get("flops_per_s")
        for row in out["train"]["rows"]:
            if matmul_rate and row.get("flops_per_s"):
                row["fraction_of_matmul"] = row["flops_per_s"] / matmul_rate
    if "profile" in sections:
        out["profile"] = profile_train_step(
            config.model, config.profile_encoding, steps=config.profile_steps
        )
        log(
            f"profile: {out['profile']['ms_per_step']:.0f} ms of ops a step, "
            + ", ".join(f"{k['kind']} {k['ms']:.0f}" for k in out["profile"]["kinds"])
        )
    if "seeds" in sections:
        out["seeds"] = _seeds_section(config, out.get("train"), log)
    if "sweep" in sections:
        out["sweep"] = eval_sweep(
            config.model,
            config.sweep_encoding,
            lengths=config.sweep_lengths,
            samples=config.sweep_samples,
            models=config.sweep_models,
            per_bucket=config.sweep_per_bucket,
        )
        log(f"sweep: {out['sweep']['wall_s']:.1f} s, {out['sweep']['num_compilations']} programs")
    if "eval_levers" in sections:
        out["eval_levers"] = eval_levers(
            config.model,
            config.sweep_encoding,
            width=config.levers_width,
            samples=config.sweep_samples,
            models=config.levers_models,
            repeats=config.repeats,
        )
        log(
            "eval levers: "
            + ", ".join(f"{r['variant']} {r['run_s']:.2f} s" for r in out["eval_levers"])
        )
    if "memory" in sections:
        out["memory"] = _memory_section(config, log)
    if "peers" in sections:
        out["peers"] = _peers_section(config, log)
    if "science" in sections:
        out["science"] = _science_section(config, out.get("peers"), log)
    if "jobs" in sections:
        out["jobs"] = sweep_jobs(
            config.jobs_config, workers=config.jobs_workers, rounds=config.jobs_rounds
        )
        log(
            "jobs: "
            + ", ".join(
                f"{r['workers']} worker(s) {r['wall_s']:.0f} s" for r in out["jobs"]["rows"]
            )
        )
    out["targets"] = check_targets(out)
    out["load_average_end"] = load_average()
    out["wall_s"] = time.perf_counter() - start
    return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def write_results(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Writes `results` as indented JSON (creating the folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(results), indent=1, allow_nan=False) + "\n")
    return path


def _finite(value: Any) -> Any:
    """NaN and infinities -> None (strict JSON has no such numbers), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
