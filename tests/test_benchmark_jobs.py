"""pe_jax.benchmark._jobs: the compile share of a sweep's runs and runs per hour by workers."""

import pytest

from pe_jax.benchmark import _jobs


def _result(train_compile, eval_compile, train_s, eval_s):
    return {
        "compile_s": {"train": train_compile, "eval": eval_compile},
        "train_time_s": train_s,
        "eval_time_s": eval_s,
    }


def test_compile_share_sums_over_runs():
    share = _jobs.compile_share([_result(10, 5, 80, 20), _result(20, 5, 150, 50)])
    assert share["compile_s"] == 40 and share["run_s"] == 300
    assert share["share"] == pytest.approx(40 / 300)


def test_compile_share_rejects_unfinished_runs():
    with pytest.raises(ValueError, match="at least one"):
        _jobs.compile_share([])
    with pytest.raises(ValueError, match="eval_time_s"):
        _jobs.compile_share([{"compile_s": {"train": 1, "eval": 1}, "train_time_s": 3}])


def test_sweep_jobs_medians_interleaving_and_speedup(monkeypatch, tmp_path):
    order, walls = [], {1: iter([400.0, 300.0, 500.0]), 2: iter([200.0, 250.0, 100.0])}

    def fake(config, workers, root, timeout_s):
        order.append(workers)
        wall = next(walls[workers])
        return {"workers": workers, "wall_s": wall, "runs": 4,
                "runs_per_hour": 3600 * 4 / wall, "compile_s": 30.0, "run_s": 120.0,
                "share": 0.25}  # fmt: skip

    monkeypatch.setattr(_jobs, "_one_job", fake)
    out = _jobs.sweep_jobs("c.py", workers=(1, 2), rounds=3, root=tmp_path)
    assert order == [1, 2, 1, 2, 1, 2]  # counts take turns within each round
    one, two = out["rows"]
    assert one["wall_s"] == 400 and two["wall_s"] == 200  # medians
    assert one["speedup"] == 1 and two["speedup"] == pytest.approx(
        (3600 * 4 / 200) / (3600 * 4 / 400)
    )
    with pytest.raises(ValueError, match="rounds"):
        _jobs.sweep_jobs("c.py", rounds=0)


def test_jobs_targets_and_table():
    from pe_jax.benchmark import format_table

    rows = [
        {"workers": 1, "rounds": 1, "runs": 4, "wall_s": 400.0, "runs_per_hour": 36.0,
         "compile_share": 0.20, "compile_s": 80.0, "speedup": 1.0},
        {"workers": 2, "rounds": 1, "runs": 4, "wall_s": 300.0, "runs_per_hour": 48.0,
         "compile_share": 0.30, "compile_s": 90.0, "speedup": 48.0 / 36.0},
    ]  # fmt: skip
    results = {"jobs": {"config": "configs/sweeps/quick.py", "rows": rows}}
    targets = _jobs.jobs_targets(results)
    assert [t["met"] for t in targets] == [True, False, False]  # 0.20 ok, 0.30 and 1.33x not
    assert targets[-1]["value"] == pytest.approx(4 / 3)
    machine = {"backend": "cpu", "device_kind": "cpu", "device_count": 1, "cpu_count": 2,
               "processor": "x", "jax_version": "0", "load_average": [0, 0, 0]}  # fmt: skip
    text = format_table({**results, "machine": machine, "config": {"name": "t"}})
    assert "| 2 | 4 | 300 | 48.0 | 1.33 | 90 | 0.30 |" in text
    assert _jobs.jobs_targets({}) == []
