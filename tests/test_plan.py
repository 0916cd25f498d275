"""A sweep's compute plan: shapes from the configs, costs from measured CPU seconds per step."""

import json

import pytest

from configs.sweeps.kazemnejad import get_config
from pe_jax.sweep import plan_markdown, plan_sweep, total_core_hours


def _calibrate(root, task, encoding, cost, models):
    path = root / task / encoding
    path.mkdir(parents=True)
    results = {
        "task": task, "protocol": "decoder", "encoding": encoding, "seeds": [0],
        "train_max_length": 20, "lengths": [2], "metrics": {}, "summary": {}, "num_params": 1,
        "steps": 10, "time_per_step_s": 9.9, "cpu_seconds_per_step": cost,
        "models": [{"seed": 0, "learning_rate": r} for r in (1e-3, 3e-3)][:models],
        "schema_version": 3,
    }  # fmt: skip
    (path / "results.json").write_text(json.dumps(results))


def test_the_plan_scales_measured_costs_by_models_and_steps(tmp_path):
    _calibrate(tmp_path, "copy_repeat", "none", 0.2, 2)  # 2 models: 0.1 s per model-step
    _calibrate(tmp_path, "copy_repeat", "t5", 0.4, 2)
    plan = plan_sweep(get_config(""), calibration=tmp_path)
    by_name = {p.name: p for p in plan}
    none = by_name["copy_repeat/none"]
    assert (none.models, none.steps) == (10, 1000)  # 5 seeds x 2 rates, the fixed budget
    assert none.train_lengths == (2, 20) and none.eval_lengths == (39, 2, 40)
    assert none.cpu_s_per_step == pytest.approx(0.2 * 10 / 2)
    assert none.core_hours == pytest.approx(1000 * 1.0 / 3600)
    alibi = by_name["copy_repeat/alibi"]  # the task's mean cost, 0.3 for 2 models
    assert alibi.cpu_s_per_step == pytest.approx(1.5) and "mean of the task" in alibi.source
    assert by_name["sort/none"].cpu_s_per_step is None  # nothing measured the task
    text = plan_markdown(plan, workers=2)
    assert "| copy_repeat/none | 10 | 1000 | 2..20 | 39, 2..40 | 1.000 | 0.28 |" in text
    total = total_core_hours(plan)
    assert f"training {total:.2f} core-hours for the 5 runs measured (30 not measured)" in text
    with pytest.raises(ValueError, match="is not a folder"):
        plan_sweep(get_config(""), calibration=tmp_path / "absent")


def test_the_sweep_command_prints_the_plan_and_trains_nothing(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    _calibrate(tmp_path / "cal", "copy_repeat", "none", 0.2, 2)
    done = subprocess.run(
        [sys.executable, "-m", "experiments.sweep", "--config=configs/sweeps/kazemnejad.py",
         f"--workdir={tmp_path / 'work'}", "--plan", f"--plan_calibration={tmp_path / 'cal'}",
         "--only=copy_repeat/*", "--workers=2"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| copy_repeat/none | 10 | 1000 | 2..20 | 39, 2..40 | 1.000 | 0.28 |" in done.stdout
    assert "Total: 5 runs, 50 models" in done.stdout and "on 2 core(s)" in done.stdout
    assert not (tmp_path / "work").exists()
