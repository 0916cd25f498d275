"""Catalogue smoke sweep: every encoding added by issue 19 trains, in both protocols, in seconds.

  python -m experiments.sweep --config=configs/sweeps/catalogue.py:smoke \
      --workdir=/tmp/catalogue_smoke
  python -m experiments.sweep report --workdir=/tmp/catalogue_smoke

Copy (binary alphabet) at the `smoke` preset (width 16, 2 heads of 8 dims, 1 layer, batch 8,
20 steps, eval at 1, 2, 4, 8), one seed, in the decoder protocol (causal) and the encoder
protocol (non-causal; every encoding below supports it: the forgetting gate adds its reverse
gates, PaTH its reverse Householder products), x {none (the baseline), pope, randomized_pope,
shifted_pope, forgetting_gate, mrope, hope, randomized_hope, shifted_hope, path, rope rotating
one of the two heads (rotate_num_heads=1)} = 22 runs. It checks that they build, train and
evaluate end to end, not how well they generalise (the models learn little). The only variant
is "smoke" (also the default).
"""

import ml_collections

from configs.copy import get_config as copy_config
from configs.sweeps.common import encoding, sweep_config

# The encodings of issue 19 (registry names), each with its options.
NEW_ENCODINGS = (
    encoding("pope", "pope"),
    encoding("randomized_pope", "randomized_pope"),
    encoding("shifted_pope", "shifted_pope"),
    encoding("forgetting_gate", "forgetting_gate"),
    encoding("mrope", "mrope"),  # 1-D positions: t = h = w (text tokens)
    encoding("hope", "hope", train_length=16),  # the smoke heads' 4 frequencies: 2 rotate
    encoding("randomized_hope", "randomized_hope", train_length=16),
    encoding("shifted_hope", "shifted_hope", train_length=16),
    encoding("path", "path"),
    encoding("rope_rotate1", "rope", rotate_num_heads=1),  # the last of the 2 heads rotates
)


def get_config(arg: str | None = None):
    if arg not in (None, "", "smoke"):
        raise ValueError(f"catalogue.py has one variant, 'smoke' (the default), got {arg!r}.")
    c = sweep_config(
        name="catalogue smoke sweep (issue 19 encodings)",
        tasks=[
            dict(label="copy_decoder", config=copy_config("protocol=decoder,smoke")),
            dict(label="copy_encoder", config=copy_config("protocol=encoder,smoke")),
        ],
        encodings=[encoding("none", "none"), *NEW_ENCODINGS],
        seeds=(0,),
    )
    c.overrides = ml_collections.ConfigDict(
        {"train": {"steps": 20}}  # the smoke preset's steps, overridable from the command line
    )
    return c
