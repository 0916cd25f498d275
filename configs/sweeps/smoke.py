"""Smoke sweep: copy (encoder protocol, smoke preset) x {none, alibi} x 2 seeds, in seconds.

  python -m experiments.sweep --config=configs/sweeps/smoke.py --workdir=runs/smoke
  python -m experiments.sweep report --workdir=runs/smoke

What the tests run; it checks the machinery, not the encodings (the models learn little).
"""

import ml_collections

from configs.copy import get_config as copy_config
from configs.sweeps.common import encoding, sweep_config


def get_config(arg: str | None = None):
    del arg  # no variants
    c = sweep_config(
        name="smoke sweep",
        # Smoke preset: width 16, 1 layer, batch 8, train lengths 1..4, eval at 1, 2, 4, 8.
        tasks=[dict(label="copy", config=copy_config("smoke"))],
        encodings=[encoding("none", "none"), encoding("alibi", "alibi")],
        seeds=(0, 1),
        protocol="decoder",
    )
    c.overrides = ml_collections.ConfigDict(
        {"train": {"steps": 20}}  # the smoke preset's steps, overridable from the command line
    )
    return c
