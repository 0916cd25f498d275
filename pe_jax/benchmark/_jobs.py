"""Whole sweeps as a user runs them: runs per hour by worker count, and the compile share.

Each measurement is the command line of the README's main job,
``python -m experiments.sweep --config=CONFIG --workdir=DIR --workers=N``, in a fresh
subprocess with an empty work folder and an empty compilation cache (`PE_JAX_CACHE_DIR`), so
that it pays every compile a first run pays. Worker counts take turns within a round (1, 2, 1,
2, ...). From each run's results.json: compile seconds (JAX's trace, lowering and compile
events, training and evaluation) over the run's training plus evaluation seconds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MAIN_JOB = "configs/sweeps/quick.py"


def compile_share(results: Sequence[dict]) -> dict[str, float]:
    """Compile and run seconds summed over runs' results.json dicts, and their ratio.

    Raises:
      ValueError: no results, or one without "compile_s", "train_time_s" or "eval_time_s".
    """
    if not results:
        raise ValueError("compile_share needs at least one run's results.json.")
    compile_s = run_s = 0.0
    for r in results:
        missing = [k for k in ("compile_s", "train_time_s", "eval_time_s") if k not in r]
        if missing:
            raise ValueError(f"results.json lacks {missing}: not a finished run of this tree.")
        compile_s += float(r["compile_s"]["train"]) + float(r["compile_s"]["eval"])
        run_s += float(r["train_time_s"]) + float(r["eval_time_s"])
    return {"compile_s": compile_s, "run_s": run_s, "share": compile_s / run_s}


def _one_job(config: str, workers: int, root: Path, timeout_s: float) -> dict[str, Any]:
    """Runs the sweep once in a subprocess; wall seconds, runs and the compile share."""
    folder = Path(tempfile.mkdtemp(prefix=f"w{workers}_", dir=root))
    env = {**os.environ, "PE_JAX_CACHE_DIR": str(folder / "cache")}
    command = [
        sys.executable,
        "-m",
        "experiments.sweep",
        f"--config={config}",
        f"--workdir={folder / 'runs'}",
        f"--workers={workers}",
    ]
    start = time.perf_counter()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-2000:]
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{tail}")
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("runs/*/*/results.json"))]
    share = compile_share(results)
    return {
        "workers": workers,
        "wall_s": wall,
        "runs": len(results),
        "runs_per_hour": 3600 * len(results) / wall,
        **share,
    }


def sweep_jobs(
    config: str = MAIN_JOB,
    *,
    workers: Sequence[int] = (1, 2),
    rounds: int = 1,
    timeout_s: float = 3600,
    root: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Runs per hour of `config`'s sweep per worker count (medians over rounds, interleaved),
    each count's compile share, and the speed-up of each count over the first.

    Raises:
      ValueError: rounds < 1 or no worker counts.
    """
    if rounds < 1 or not workers:
        raise ValueError(
            f"sweep_jobs needs rounds >= 1 and worker counts, got {rounds}, {workers}."
        )
    with tempfile.TemporaryDirectory(prefix="pe_jax_jobs_", dir=root) as tmp:
        jobs = [_one_job(config, n, Path(tmp), timeout_s) for _ in range(rounds) for n in workers]
    rows = []
    for n in workers:
        mine = [j for j in jobs if j["workers"] == n]
        rows.append(
            {
                "workers": n,
                "rounds": len(mine),
                "runs": mine[0]["runs"],
                "wall_s": statistics.median(j["wall_s"] for j in mine),
                "runs_per_hour": statistics.median(j["runs_per_hour"] for j in mine),
                "compile_share": statistics.median(j["share"] for j in mine),
                "compile_s": statistics.median(j["compile_s"] for j in mine),
            }
        )
    base = rows[0]["runs_per_hour"]
    for row in rows:
        row["speedup"] = row["runs_per_hour"] / base
    return {"config": config, "rows": rows, "jobs": jobs}


# The main job's compile share, at most; runs per hour of the most workers over one, at least.
COMPILE_SHARE = 0.25
WORKERS_SPEEDUP = 1.5


def jobs_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The "jobs" section's targets: the compile share of every worker count's job, and the
    runs-per-hour speed-up of the most workers."""
    from pe_jax.benchmark._format import target

    jobs = results.get("jobs")
    if not jobs:
        return []
    out = [
        target(
            f"{jobs['config']} with {r['workers']} worker(s): compile share of run time",
            r["compile_share"],
            COMPILE_SHARE,
            at_least=False,
        )
        for r in jobs["rows"]
    ]
    most, base = jobs["rows"][-1], jobs["rows"][0]
    name = (
        f"{jobs['config']}: runs per hour, {most['workers']} workers over {base['workers']} process"
    )
    return [*out, target(name, most["speedup"], WORKERS_SPEEDUP, at_least=True)]


def format_jobs(results: dict[str, Any]) -> list[str]:
    """The "jobs" section as Markdown lines (none when it did not run)."""
    from pe_jax.benchmark._format import num, table

    jobs = results.get("jobs")
    if not jobs:
        return []
    out = [
        "",
        f"Whole sweeps: `python -m experiments.sweep --config={jobs['config']} "
        "--workers=N`, empty work folder and compilation cache each time, worker counts "
        f"taking turns, median of {jobs['rows'][0]['rounds']} round(s)",
    ]
    return out + table(
        ["workers", "runs", "wall s", "runs/hour", "speed-up", "compile s", "compile share"],
        [
            [
                str(r["workers"]),
                str(r["runs"]),
                num(r["wall_s"], "{:.0f}"),
                num(r["runs_per_hour"], "{:.1f}"),
                num(r["speedup"], "{:.2f}"),
                num(r["compile_s"], "{:.0f}"),
                num(r["compile_share"], "{:.2f}"),
            ]
            for r in jobs["rows"]
        ],
    )
