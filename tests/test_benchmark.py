"""The benchmark runs end to end at a tiny size and writes well-formed JSON (no timing checks)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from pe_jax.benchmark import (
    DEFAULT_SECTIONS,
    BenchmarkConfig,
    check_targets,
    format_table,
    run_benchmark,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]


def _finite_numbers(value):
    """Every number in a JSON document, recursively."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _finite_numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _finite_numbers(v)]
    return []


def test_tiny_benchmark_writes_well_formed_json(tmp_path):
    results = run_benchmark(BenchmarkConfig.preset("tiny"), log=lambda _: None)
    path = write_results(results, tmp_path / "out" / "benchmark.json")
    data = json.loads(path.read_text())  # strict JSON: no NaN / Infinity
    assert all(math.isfinite(n) for n in _finite_numbers(data))

    machine = data["machine"]
    for key in ("backend", "device_kind", "device_count", "cpu_count", "jax_version"):
        assert machine[key] not in (None, "")
    assert set(DEFAULT_SECTIONS) <= set(data) and "jobs" not in data  # jobs: only when named
    assert data["floors"]["copy"]["bytes_per_s"] > 0
    assert data["floors"]["matmul"]["flops_per_s"] > 0
    assert {(r["dtype"], r["layout"]) for r in data["rope"]} >= {
        ("float32", "half"),
        ("float32", "interleaved"),
        ("bfloat16", "half"),
        ("bfloat16", "interleaved"),
    }
    assert {r["encoding"] for r in data["bias"]} == {"alibi", "t5", "kerple_log", "fire"}
    train = {r["encoding"]: r for r in data["train"]["rows"]}
    assert train["none"]["relative_to_none"] == 1.0
    assert all(r["tokens_per_s"] > 0 for r in train.values())
    assert [(r["seed_loop"], r["num_seeds"]) for r in data["seeds"]] == [
        ("vmap", 1),
        ("vmap", 2),
        ("map", 1),
        ("map", 2),
    ]
    assert data["sweep"]["num_compilations"] >= 1
    assert data["sweep"]["models"] == 2
    levers = {r["variant"]: r for r in data["eval_levers"]}
    assert set(levers) == {"blocked", "unblocked", "vmap", "low_optimization"}
    assert all(r["max_metric_difference"] < 1e-4 and r["run_s"] > 0 for r in levers.values())
    assert all("error" not in r for r in data["memory"]["rows"]), data["memory"]
    assert data["memory"]["rows"][0]["temp_bytes"] >= 0
    peers = data["peers"]
    assert peers["available"] or "bench" in peers["message"]
    if peers["available"]:  # the same batches on both sides: useful tokens/s of each, > 0
        (row,) = peers["workload"]["rows"]
        assert 0 < row["useful_fraction"] <= 1
        assert row["pe_jax_slot_tokens_per_s"] >= row["pe_jax_useful_tokens_per_s"] > 0
        assert row["x_transformers_useful_tokens_per_s"] > 0
        assert "Peers on the task workload" in format_table(data)
    assert all(t["met"] in (True, False) for t in data["targets"])
    assert "Targets" in format_table(data)
    # the command line re-prints a written JSON and keeps the tables as markdown
    markdown = tmp_path / "benchmark.md"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.benchmark",
            f"--from_json={path}",
            f"--markdown={markdown}",
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert markdown.read_text().strip() == format_table(data).strip()


def test_unknown_preset_and_section_are_rejected():
    with pytest.raises(ValueError, match="preset"):
        BenchmarkConfig.preset("huge")
    with pytest.raises(ValueError, match="sections"):
        run_benchmark(BenchmarkConfig.preset("tiny"), sections=("floors", "gpu"))


def test_targets_compare_against_the_issue_limits():
    results = {
        "train": {
            "rows": [
                {"encoding": "none", "relative_to_none": 1.0},
                {"encoding": "rope", "relative_to_none": 1.2},
                {"encoding": "alibi", "relative_to_none": 1.1},
            ]
        },
        "sweep": {
            "min_length": 1,
            "max_length": 500,
            "num_compilations": 19,
            "models": 10,
            "full_sweep_estimate_s": 660.0,
        },
    }
    met = {t["target"].split(":")[0]: t["met"] for t in check_targets(results)}
    assert met == {
        "training step rope": False,
        "training step alibi": True,
        "evaluation sweep 1..500": True,
        "evaluation 1..500": False,  # 11 minutes for the 10 models
    }
    (minutes,) = [t for t in check_targets(results) if "10-model run" in t["target"]]
    assert minutes["value"] == 11.0 and minutes["limit"] == 10.0


def test_full_sweep_uses_the_encoder_protocols_evaluation_samples():
    """The sweep's examples per length are the encoder protocol's eval.samples, in calls of
    its eval.batch_size, for a run of its seeds x learning rates."""
    from configs.sweeps.deletang_ruoss import get_config as protocol

    full = BenchmarkConfig.preset("full")
    overrides = protocol("published_lengths").overrides
    assert full.sweep_samples == overrides.eval.samples == overrides.eval.batch_size
    assert max(full.sweep_lengths) == overrides.eval.max_length
    models = len(protocol("published_lengths").seeds) * len(overrides.train.learning_rates)
    assert full.sweep_models == models
