"""The science section at a tiny size: its arithmetic, the batches both sides train, its
targets, the peer skipped without torch, and the GPU preset (no timing checks)."""

import dataclasses
import statistics
import sys

import jax
import numpy as np
import pytest

from pe_jax.benchmark import BenchmarkConfig, check_targets, format_table, run_benchmark
from pe_jax.benchmark._peers import needs_mask, peers_available
from pe_jax.benchmark._science import science_section
from pe_jax.benchmark._science_runs import decoder_settings, encoder_settings
from pe_jax.training import make_mesh, make_train_program

TINY = BenchmarkConfig.preset("tiny")


def _tiny(**science) -> BenchmarkConfig:
    return dataclasses.replace(TINY, science=dataclasses.replace(TINY.science, **science))


def _check_arithmetic(protocol: dict, k: int) -> None:
    steps, rounds = protocol["steps"], protocol["rounds"]
    assert protocol["run"]["num_models"] == k
    assert len(protocol["useful_tokens"]) == rounds
    for side in protocol["sides"].values():
        assert len(side["wall_s"]) == len(side["cpu_s"]) == rounds
        median = statistics.median(side["wall_s"])
        assert side["model_steps_per_s"] == pytest.approx(k * steps / median, rel=1e-12)
        assert side["model_steps_per_cpu_s"] == pytest.approx(
            k * steps / statistics.median(side["cpu_s"]), rel=1e-12
        )
        rates = [u / w for u, w in zip(protocol["useful_tokens"], side["wall_s"], strict=True)]
        assert side["useful_tokens_per_s"] == pytest.approx(statistics.median(rates), rel=1e-12)


@pytest.fixture(scope="module")
def science():
    reason = peers_available()
    config = _tiny(rounds=2, steps=3)
    return config, science_section(config, peer_reason=reason, threads=1, log=lambda _: None)


def test_rates_are_k_times_steps_over_the_recorded_seconds(science):
    config, result = science
    s = config.science
    encoder, decoder = result["protocols"]["encoder"], result["protocols"]["decoder"]
    _check_arithmetic(encoder, len(s.seeds) * len(s.learning_rates))
    _check_arithmetic(decoder, len(s.seeds) * len(decoder_settings(s).rates))
    if result["peers_available"]:
        assert set(encoder["sides"]) == {"pe_jax", "x_transformers"}  # tiny: no compile
        ratio = encoder["ratio"]
        pe, peer = encoder["sides"]["pe_jax"], encoder["sides"][encoder["best_peer"]]
        assert ratio == pytest.approx(pe["model_steps_per_s"] / peer["model_steps_per_s"])


def test_the_encoder_peer_trains_the_lengths_pe_jax_schedules(science):
    config, result = science
    encoder = result["protocols"]["encoder"]
    settings = encoder_settings(config.model, config.science)
    with jax.set_mesh(make_mesh()):
        schedule = make_train_program(settings, make_mesh()).step.schedule
    steps = encoder["schedule"]["steps"]
    assert steps == list(range(1000, 1000 + 2 * 3))
    task = settings.task
    for i, t in enumerate(steps):
        exact = task.width(schedule.length(t), "encoder")
        assert encoder["schedule"]["peer_widths"][i] == [exact] * len(settings.seeds)
        assert encoder["schedule"]["pe_jax_widths"][i] == [schedule.width(t)] * len(settings.seeds)
    # One length per step, no padding at the exact width: every slot the peer sees is real.
    k, batch = len(settings.models), settings.batch_size
    widths = [encoder["schedule"]["peer_widths"][i][0] for i in range(len(steps))]
    assert encoder["useful_tokens"] == [k * batch * sum(widths[:3]), k * batch * sum(widths[3:])]


def test_the_decoder_run_comes_from_its_sweep_config(science):
    config, result = science
    decoder = result["protocols"]["decoder"]
    run = decoder["run"]
    assert (run["causal"], run["norm"], run["num_heads"]) == (True, "pre", 1)
    assert run["length_sampling"] == "per_example"  # the kazemnejad run's own
    assert run["learning_rates"] == [2e-3, 5e-3]
    widths = np.array(decoder["schedule"]["peer_widths"])
    assert (np.array(decoder["schedule"]["pe_jax_widths"]) == run["train_width"]).all()
    assert (widths <= run["train_width"]).all() and (widths >= 2).all()
    assert sum(decoder["useful_tokens"]) < sum(decoder["slot_tokens"])


def test_needs_mask_only_where_padding_is_seen():
    full = np.ones((2, 4), bool)
    right = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    left = np.array([[0, 1, 1, 1], [1, 1, 1, 1]], bool)
    assert not needs_mask(full, causal=False)
    assert not needs_mask(right, causal=True)
    assert needs_mask(right, causal=False)
    assert needs_mask(left, causal=True)


def test_targets_from_a_hand_made_results_dict():
    def sides(pe, eager, compiled):
        return {
            "pe_jax": {"model_steps_per_s": pe},
            "x_transformers": {"model_steps_per_s": eager},
            "x_transformers_compiled": {"model_steps_per_s": compiled},
        }

    results = {
        "science": {
            "protocols": {
                "encoder": {"sides": sides(30.0, 10.0, 20.0)},  # 30 / 20 = 1.5
                "decoder": {"sides": sides(50.0, 20.0, 10.0)},  # 50 / 20 = 2.5
            }
        },
        "peers": {
            "rows": [{"encoding": "none", "ratio": 1.3, "ratio_flash": 1.25, "ratio_compiled": 0.9}]
        },
    }
    found = {t["target"].split(":")[0]: t for t in check_targets(results)}
    assert found["science workload encoder"]["value"] == pytest.approx(1.5)
    assert found["science workload encoder"]["met"] is False
    assert found["science workload decoder"]["met"] is True
    same = [t for t in check_targets(results) if t["target"].startswith("one model same shape")]
    assert [(t["limit"], t["value"], t["met"]) for t in same] == [
        (1.2, 1.25, True),
        (1.0, 0.9, False),
    ]


def test_without_torch_the_peer_is_skipped_with_its_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    config = _tiny(protocols=("decoder",))
    results = run_benchmark(config, sections=("science",), log=lambda _: None)
    science = results["science"]
    assert science["peers_available"] is False
    assert "pip install -e .[bench]" in science["peer_message"]
    assert set(science["protocols"]["decoder"]["sides"]) == {"pe_jax"}
    assert science["protocols"]["decoder"]["ratio"] is None
    assert results["targets"] == []
    assert science["peer_message"] in format_table(results)


@pytest.mark.skipif(peers_available() is not None, reason="needs torch and x-transformers")
def test_compiled_peer_compiles_one_graph_for_every_width():
    # At this size step 1000's width equals the batch size (4), which duck sizing would fix.
    config = _tiny(protocols=("encoder",), compile=True, rounds=2, steps=3)
    result = science_section(config, peer_reason=None, threads=1, log=lambda _: None)
    encoder = result["protocols"]["encoder"]
    assert len({w[0] for w in encoder["schedule"]["peer_widths"]}) > 1
    compiled = encoder["sides"]["x_transformers_compiled"]
    assert compiled["graphs_compiled"] >= 1
    assert compiled["recompiles_in_timed_rounds"] == 0
    _check_arithmetic(encoder, 2)


def test_gpu_preset_validates_and_refuses_a_machine_without_one():
    gpu = BenchmarkConfig.preset("gpu")
    assert gpu.requires_gpu and gpu.science.seed_loop == "vmap"
    decoder = decoder_settings(gpu.science)
    encoder = encoder_settings(gpu.model, gpu.science)
    for settings in (decoder, encoder):
        assert 64 <= len(settings.models) <= 256
        assert settings.model.dtype == np.dtype("bfloat16")
        assert settings.seed_loop == "vmap"
    if jax.default_backend() != "gpu":
        with pytest.raises(ValueError, match="GPU"):
            run_benchmark(gpu, sections=("floors",), log=lambda _: None)
