"""Odds first: the symbols at odd positions, then those at even ones (Deletang et al.).

  python -m experiments.train --config=configs/odds_first.py --workdir=runs/rope
  python -m experiments.train \
      --config=configs/odds_first.py:smoke,model.encoding=alibi --workdir=runs/s

After ":" come "protocol=encoder|decoder", presets ("smoke", "published") and key=value fields,
comma-separated. Lengths: encoder train 1..16, eval 1..64 (published 1..40 / 41..500).
"""

from configs.base import task_config


def get_config(arg: str | None = None):
    return task_config(
        "odds_first",
        arg,
        task_options=dict(
            num_symbols=2,  # binary alphabet as in Deletang et al.
            order="released",  # even positions first, as their sampler; "paper": odd first
        ),
        lengths={"encoder": (1, 16, 1, 64), "decoder": (2, 16, 2, 32)},
    )
