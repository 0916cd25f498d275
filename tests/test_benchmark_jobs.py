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
