"""configs/sweeps/catalogue.py: it lists every issue-19 encoding and each run's settings build.

Fast: the sweep is expanded and validated, nothing is trained.
"""

import pytest

from configs.sweeps.catalogue import get_config
from pe_jax.sweep import expand_sweep
from pe_jax.training import settings_from_config

NEW = (
    "pope",
    "randomized_pope",
    "shifted_pope",
    "forgetting_gate",
    "mrope",
    "hope",
    "randomized_hope",
    "shifted_hope",
    "path",
)


@pytest.fixture(scope="module")
def runs():
    return expand_sweep(get_config("smoke"))


def test_every_new_encoding_in_both_protocols(runs):
    for protocol in ("decoder", "encoder"):
        names = {r.config.model.encoding for r in runs if r.config.protocol == protocol}
        assert set(NEW) | {"rope", "none"} <= names, protocol
        rotated = [
            r
            for r in runs
            if r.config.protocol == protocol
            and r.config.model.encoding == "rope"
            and r.config.model.encoding_options.get("rotate_num_heads") is not None
        ]
        assert len(rotated) == 1


def test_each_run_settings_build(runs):
    assert len(runs) == 2 * (len(NEW) + 2)
    for run in runs:
        settings_from_config(run.config)  # raises on any bad field or option


def test_default_is_the_smoke_variant():
    assert get_config().to_dict() == get_config("smoke").to_dict()
    with pytest.raises(ValueError, match="smoke"):
        get_config("full")


def test_benchmark_full_preset_times_the_new_encodings():
    from pe_jax.benchmark._config import BenchmarkConfig

    timed = BenchmarkConfig.preset("full").train_encodings
    for name in ("pope", "randomized_pope", "forgetting_gate", "mrope", "hope", "path"):
        assert name in timed
    assert timed[0] == "none"
    assert len(BenchmarkConfig.preset("quick").train_encodings) == 4  # the quick preset stays small
