"""Every shipped sweep config expands to runs whose configs the runner accepts (no training)."""

import importlib

import pytest

from pe_jax.sweep import expand_sweep
from pe_jax.training import _resources, check_config

CONFIGS = [
    ("quick", ""),
    ("quick", "smoke"),
    ("kazemnejad", ""),
    ("kazemnejad", "smoke"),
    ("kazemnejad", "pilot"),
    ("deletang_ruoss", ""),
    ("deletang_ruoss", "full"),
    ("deletang_ruoss", "published_lengths"),
    ("deletang_ruoss", "published_architecture"),
    ("deletang_ruoss", "smoke"),
    ("deletang_ruoss", "pilot"),
    ("catalogue", ""),
    ("smoke", ""),
    ("compare", ""),
    ("compare", "smoke,task=reverse,protocol=decoder,encodings=t5;none,seeds=0;1,steps=30"),
]


def _covering(runs):
    """One run per task and one per encoding (every task config and every encoding's
    options are then checked; check_config takes a fraction of a second each)."""
    tasks, encodings, chosen = set(), set(), []
    for run in runs:
        task, encoding = run.name.split("/")
        if task not in tasks or encoding not in encodings:
            chosen.append(run)
            tasks.add(task)
            encodings.add(encoding)
    return chosen


@pytest.fixture(autouse=True)
def large_host(monkeypatch):
    """The configs' validity, not this host's memory: some variants (deletang_ruoss
    published_lengths, ~46 GiB of evaluation activations) are sized for an accelerator.
    tests/test_fencing.py tests the memory check itself."""
    monkeypatch.setattr(_resources, "available_memory", lambda: (2**40, "a 1 TiB test host"))


@pytest.mark.parametrize("name,arg", CONFIGS)
def test_sweep_config_expands_to_valid_runs(name, arg):
    sweep = importlib.import_module(f"configs.sweeps.{name}").get_config(arg)
    runs = expand_sweep(sweep)
    assert len(runs) == len(sweep.tasks) * len(sweep.encodings)
    assert len({run.name for run in runs}) == len(runs)
    for run in _covering(runs):
        check_config(run.config)  # raises ValueError on any field the runner refuses


def test_reproductions_follow_the_rerun_rules():
    """>= 5 seeds, a learning-rate grid, a fixed budget, dense evaluation, a declared gate."""
    for name, args in (("kazemnejad", [""]), ("deletang_ruoss", ["", "published_architecture"])):
        module = importlib.import_module(f"configs.sweeps.{name}")
        for arg in args:
            sweep = module.get_config(arg)
            assert len(sweep.seeds) >= 5
            assert sweep.gate.metric == {"kazemnejad": "exact_match"}.get(name, "token_accuracy")
            for run in expand_sweep(sweep):
                assert len(run.config.train.learning_rates) >= 2
                assert run.config.train.until is None  # every model trains the same steps
                assert run.config.eval.stride == 1 and not run.config.eval.lengths


def test_published_architecture_keeps_the_published_model():
    from configs.sweeps.deletang_ruoss import get_config

    model = expand_sweep(get_config("published_architecture"))[0].config.model
    assert (model.num_layers, model.num_heads, model.width, model.dropout) == (5, 8, 64, 0.1)
    reduced = expand_sweep(get_config(""))[0].config.model
    assert (reduced.num_layers, reduced.num_heads, reduced.dropout) == (3, 4, 0.0)


def test_refresh_manifest_rewrites_the_report_fields(tmp_path):
    import json

    from configs.sweeps.kazemnejad import get_config
    from pe_jax.sweep import refresh_manifest

    with pytest.raises(ValueError, match="is not a folder"):
        refresh_manifest(get_config("smoke"), tmp_path / "absent")
    refresh_manifest(get_config("smoke"), tmp_path)
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert len(manifest["runs"]) == 35 and manifest["runs"][0] == "copy_repeat/none"
    published = manifest["sweep_config"]["published"]
    assert {(p["task"], p["encoding"]) for p in published["numbers"]} >= {
        ("copy_repeat", "none"),
        ("copy_random", "t5"),
        ("reverse_2x", "alibi"),
    }
    assert published["aggregates"][0]["kind"] == "mean_reciprocal_rank"
    # A later refresh changes the report fields only; the planned runs' config stays.
    manifest["sweep_config"]["overrides"] = {"train": {"until": 0.99}}
    manifest["sweep_config"]["published"] = {}
    (tmp_path / "sweep.json").write_text(json.dumps(manifest))
    refresh_manifest(get_config("smoke"), tmp_path)
    again = json.loads((tmp_path / "sweep.json").read_text())
    assert again["sweep_config"]["overrides"] == {"train": {"until": 0.99}}
    assert again["sweep_config"]["published"] == published
    assert again["sweep_config"]["gate"] == {"metric": "exact_match", "threshold": 0.95}


def test_pilots_train_one_seed_per_rate_with_the_gate_over_the_training_range():
    for name in ("kazemnejad", "deletang_ruoss"):
        sweep = importlib.import_module(f"configs.sweeps.{name}").get_config("pilot")
        assert sweep.pilot and tuple(sweep.seeds) == (0,)
        for run in expand_sweep(sweep):
            train = run.config.train
            assert len(train.learning_rates) >= 2 and train.until == sweep.gate.threshold
            assert train.gate_lengths >= train.max_length  # every training length
    rope = next(
        r
        for r in expand_sweep(importlib.import_module("configs.sweeps.kazemnejad").get_config(""))
        if r.encoding == "rope"
    )
    model = rope.config.model
    # RoPE at 25% of a 64-dim head rotates 16 dims, as published.
    assert model.width // model.num_heads == 64
    assert model.encoding_options.rotary_fraction * 64 == 16


def test_encoding_options_in_the_sweep_overrides_reach_every_encoding():
    from configs.sweeps.smoke import get_config

    sweep = get_config("")
    sweep.encodings = [
        {"label": "rope", "name": "rope", "options": {}},
        {"label": "rope_b100", "name": "rope", "options": {"base": 100.0}},
    ]
    sweep.overrides = {"model": {"encoding_options": {"base": 500.0}}, "train": {"steps": 5}}
    runs = {r.encoding: r.config.model.encoding_options.to_dict() for r in expand_sweep(sweep)}
    assert runs == {"rope": {"base": 500.0}, "rope_b100": {"base": 100.0}}
