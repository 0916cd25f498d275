"""Fixed budgets and reproducible documents: one config trained twice gives one results.json."""

import json

from configs.copy import get_config
from pe_jax.reporting import write_report
from pe_jax.training import set_field, train_and_evaluate

# Timing fields differ between two runs of one config; every other field must not.
TIMING = ("time", "compile", "cpu")


def _run(workdir):
    c = get_config("smoke")
    for key, value in {
        "seeds": (0, 1),
        "train.learning_rates": (1e-3, 3e-3),
        "train.steps": 12,
        "train.gate_every": 4,
        "train.until": None,
    }.items():
        set_field(c, key, value)
    train_and_evaluate(c, workdir, log=lambda _: None)
    return json.loads((workdir / "results.json").read_text())


def _without_timing(results: dict) -> dict:
    return {k: v for k, v in results.items() if not any(t in k for t in TIMING)}


def test_a_fixed_budget_run_is_reproducible_and_trains_every_model_the_same_steps(tmp_path):
    first = _run(tmp_path / "a" / "copy" / "none")
    second = _run(tmp_path / "b" / "copy" / "none")
    assert _without_timing(first) == _without_timing(second)
    assert first["until"] is None and first["steps_trained"] == [12] * 4
    gates = [
        json.loads(line)
        for line in (tmp_path / "a" / "copy" / "none" / "metrics.jsonl").read_text().splitlines()
        if '"gate"' in line
    ]
    assert [g["step"] for g in gates] == [4, 8, 12]  # the gate measured, nothing stopped
    report = write_report(tmp_path / "a", log=lambda _: None)["report"].read_text()
    assert "steps trained: 12 steps (fixed budget)" in report
