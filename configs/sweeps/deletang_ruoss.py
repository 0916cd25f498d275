"""Reduced-scale reproduction of the encoder protocol (Deletang et al. 2023, "Neural Networks
and the Chomsky Hierarchy"; Ruoss et al. 2023, "Randomized Positional Encodings Boost Length
Generalization of Transformers").

  python -m experiments.sweep --config=configs/sweeps/deletang_ruoss.py \
      --workdir=runs/deletang_ruoss
  python -m experiments.sweep --config=configs/sweeps/deletang_ruoss.py:smoke \
      --workdir=/tmp/dr_smoke      # all 66 runs at the smoke scale (minutes)
  python -m experiments.sweep report --workdir=runs/deletang_ruoss

6 tasks (reverse, duplicate, sort, missing_duplicate, odds_first, binary addition) x 11
encodings (none, sinusoidal, learned, rope, alibi, transformer_xl and the randomized variant of
each encoding but none) = 66 runs of 2 seeds each. Randomized as in the official code
(google-deepmind/randomized_positional_encodings): sinusoidal, learned and rope get positions
drawn from [0, 2048) per sequence; alibi and transformer_xl get relative distances drawn from
[1, 2048) in every layer ("randomized_alibi", "randomized_transformer_xl"; the sampled-positions
variants are "randomized_positions_*"). ALiBi here is bidirectional with the official code's
+0.5 slope for keys on the left (the ALiBi adapter's default when causal=False).

Task definitions, from Deletang et al.'s generators (google-deepmind/
neural_networks_chomsky_hierarchy, tasks/): binary reverse (dcf/reverse_string.py), duplicate
(cs/duplicate_string.py), sort over 5 symbols (cs/bucket_sort.py), missing_duplicate
(cs/missing_duplicate_string.py), odds_first in their sampler's order, even 1-based positions
first (cs/odds_first.py; "task_options.order=paper" is the docstring's order), binary
little-endian addition with operands splitting T - 1 digits, then a terminator
(cs/binary_addition.py). Input x_1..x_T then EMPTY answer slots, bidirectional attention.

Two scales (arg after ":"), both against the published setup:
  model   3 blocks, width 64, 4 heads, MLP 4x with ReLU, post-LN, no dropout (~0.15M
          parameters); published: 5 blocks, width 64, 8 heads, MLP 4x with ReLU, post-LN,
          dropout 0.1 (the "published" preset of configs/base.py, which the overrides shrink)
  train   1,000 steps, batch 32, Adam lr 3e-3 (100 warmup, cosine), clip 1.0, 2 seeds
          published: 2,000,000 steps, batch 128, constant lr in {1e-4, 3e-4, 5e-4}, 10 seeds
  lengths ""  (default): train 1..16, test every length 1..200 (12.5x, the published ratio
              500 / 40), 128 examples per length in calls of 64
          "published_lengths": train 1..40, test every length 1..500, 128 examples per length
          published: train 1..40, test every length 41..500, 512 examples per length in calls
              of 64 (eval.samples=512 to match)
  Training draws one length per step for the whole batch (train.length_sampling per_batch,
  the official trainer's), each step at its length's padded width.
Per-token accuracy is the metric; the OOD mean weighs every length beyond the train length
equally (the published score).

Results: experiments/results/deletang_ruoss/ (report.md is generated from the runs).
"""

import ml_collections

from configs import addition, duplicate, missing_duplicate, odds_first, reverse, sort
from configs.sweeps.common import encoding, sweep_config

TASKS = {
    "reverse": reverse,
    "duplicate": duplicate,
    "sort": sort,
    "missing_duplicate": missing_duplicate,
    "odds_first": odds_first,
    "addition": addition,  # binary, little-endian, operands split the digit budget
}
# Randomized positions are a sorted sample from [0, RANDOM_MAX), randomized distances one from
# [1, RANDOM_MAX) (Ruoss et al.: L_max = 2048, which covers input + answer at length 500 for
# every task, duplicate's 1500 tokens included).
RANDOM_MAX = 2048
# (train max length, longest evaluated length) of each scale; every length up to it is tested.
LENGTHS = {"": (16, 200), "published_lengths": (40, 500)}


def get_config(arg: str | None = None):
    """arg: "" (train to 16), "published_lengths" (train to 40, test to 500), or "smoke"."""
    arg = arg or ""
    if arg not in (*LENGTHS, "smoke"):
        raise ValueError(f"arg must be one of {(*LENGTHS, 'smoke')}, got {arg!r}.")
    smoke = arg == "smoke"
    # "published" sets the published architecture; the overrides below then shrink it.
    base = [
        dict(label=label, config=module.get_config("smoke" if smoke else "published"))
        for label, module in TASKS.items()
    ]
    plain = [
        ("none", "none", {}),
        ("sinusoidal", "sinusoidal", {}),
        ("learned", "learned", {"max_length": RANDOM_MAX}),  # the table must reach length 500
        ("rope", "rope", {}),
        ("alibi", "alibi", {}),
        ("transformer_xl", "transformer_xl", {}),
    ]
    encodings = [encoding(label, name, **options) for label, name, options in plain]
    # "randomized_<name>" is the official method of each: sampled positions for the absolute
    # encodings and RoPE, sampled distances in every layer for alibi and transformer_xl.
    encodings += [
        encoding(
            f"randomized_{label}", f"randomized_{name}", **{**options, "max_length": RANDOM_MAX}
        )
        for label, name, options in plain[1:]  # NoPE has no positions to randomize
    ]
    c = sweep_config(
        name="Encoder protocol (Deletang et al. 2023 / Ruoss et al. 2023), reduced scale",
        tasks=base,
        encodings=encodings,
        seeds=(0, 1),
    )
    c.metric = "token_accuracy"  # the published metric of this protocol
    if smoke:
        c.overrides = ml_collections.ConfigDict({"train": {"steps": 10}})
        return c
    train_max, eval_max = LENGTHS[arg]
    c.overrides = ml_collections.ConfigDict(
        {
            "model": {
                "num_layers": 3,  # published 5
                "num_heads": 4,  # published 8
                "width": 64,  # as published
                "dropout": 0.0,  # published 0.1; too few steps here to need it
            },
            "train": {
                "steps": 1000,  # published 2,000,000
                "batch_size": 32,  # published 128
                "learning_rate": 3e-3,  # published 1e-4..5e-4 over far more steps
                "schedule": "cosine",  # published constant; decay helps in 1,000 steps
                "warmup_steps": 100,  # linear warmup, then cosine decay
                "min_length": 1,  # train lengths 1..train_max (published 1..40)
                "max_length": train_max,
                "log_every": 200,  # steps between progress lines
                "checkpoint_every": 1000,  # steps between checkpoints (resume points)
            },
            "eval": {
                "lengths": (),  # dense: every length min_length..max_length
                "min_length": 1,
                "max_length": eval_max,
                "stride": 1,
                "samples": 128,  # examples per length (published 512)
                "batch_size": 64,  # examples per evaluation call, as published
            },
        }
    )
    return c
