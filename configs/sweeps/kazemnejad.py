"""Reduced-scale reproduction of the decoder protocol (Kazemnejad et al. 2023, "The Impact of
Positional Encoding on Length Generalization in Transformers").

  python -m experiments.sweep --config=configs/sweeps/kazemnejad.py --workdir=runs/kazemnejad
  python -m experiments.sweep --config=configs/sweeps/kazemnejad.py:smoke \
      --workdir=/tmp/kz_smoke      # all 30 runs at the smoke scale (minutes)
  python -m experiments.sweep report --workdir=runs/kazemnejad

6 tasks (copy of one repeated token, copy of random tokens, reverse, sort, parity, decimal
addition) x 5 encodings (none, t5 with 32 buckets shared by all layers, alibi, rope rotating
25% of each head's dimensions as the paper did, sinusoidal) = 30 runs of 3 seeds each.

Scale used here vs. published:
  model   4 blocks, width 48, 3 heads of 16 dims (25% rotary = 4 dims), MLP 4x, pre-LN,
          causal (~0.11M parameters); published: decoder-only T5-base, ~107M parameters
  train   1,000 steps, batch 32, Adam lr 5e-3 (50 warmup, cosine), clip 1.0, 3 seeds
          published: 40,000 steps, batch 64, lr 3e-5, 3 seeds
          (configs/sweeps/quick.py: the same depth and width learn binary copy to 16 in
          1,000 steps)
  lengths copy / reverse: train 2..20, test 21..40; sort, parity, addition: train 1..8,
          test 9..16 (addition: operand digits, as configs/addition.py's decoder protocol);
          every length evaluated, 64 examples each
Exact match of the whole answer is the metric (teacher-forced, which equals greedy decoding).
At this scale copy_repeat and sort are learned by every encoding (100% in-distribution exact
match), parity by none and t5 only, and copy_random, reverse and addition by none of them: check
the in-distribution column of the report before reading the OOD one. Results:
experiments/results/kazemnejad/.
"""

import ml_collections

from configs import addition, copy, parity, reverse, sort
from configs.sweeps.common import encoding, sweep_config

# (label, task config module, extra arg after "protocol=decoder", (train max, test max) or
# None for the task file's decoder lengths: sort, parity, addition train 1..8, test 9..16).
TASKS = (
    ("copy_repeat", copy, "task_options.variant=repeat", (20, 40)),
    # The paper copies tokens of a 100-token vocabulary; binary here would be a different task.
    ("copy_random", copy, "task_options.num_symbols=100", (20, 40)),
    ("reverse", reverse, "", (20, 40)),
    ("sort", sort, "", None),
    ("parity", parity, "", None),
    ("addition", addition, "", None),  # decimal, both operands 1..8 digits at train
)


def _task_config(module, extra: str, lengths, smoke: bool):
    arg = ",".join(filter(None, ["protocol=decoder", "smoke" if smoke else "", extra]))
    config = module.get_config(arg)
    if lengths and not smoke:
        # Train 2..20; evaluate every length 2..40, so in- and out-of-distribution means come
        # from the same run (the summaries split at the train max).
        config.train.max_length, config.eval.max_length = lengths
    return config


def get_config(arg: str | None = None):
    """arg: "" for the scale above, "smoke" for a seconds-long check of every run."""
    smoke = arg == "smoke"
    c = sweep_config(
        name="Decoder protocol (Kazemnejad et al. 2023), reduced scale",
        tasks=[
            dict(label=label, config=_task_config(module, extra, lengths, smoke))
            for label, module, extra, lengths in TASKS
        ],
        encodings=[
            encoding("none", "none"),
            encoding("t5", "t5", num_buckets=32),  # shared by all layers (model.share_encoding)
            encoding("alibi", "alibi"),
            encoding("rope", "rope", rotary_fraction=0.25),  # the paper's partial rotary
            encoding("sinusoidal", "sinusoidal"),
        ],
        seeds=(0, 1, 2),
    )
    c.metric = "exact_match"  # the published metric of this protocol
    if smoke:
        c.overrides = ml_collections.ConfigDict({"train": {"steps": 10}})
        return c
    c.overrides = ml_collections.ConfigDict(
        {
            "model": {
                "num_layers": 4,  # published: T5-base (12 layers)
                "width": 48,  # published 768
                "num_heads": 3,  # published 12; head dim 16, so 25% rotary is 4 dims
                "share_encoding": True,  # one T5 table for all layers, as T5 does
            },
            "train": {
                "steps": 1000,  # published 40,000
                "batch_size": 32,  # published 64
                "learning_rate": 5e-3,  # published 3e-5 (for a 107M model)
                "warmup_steps": 50,  # linear warmup, then cosine decay
                "log_every": 200,  # steps between progress lines
                "checkpoint_every": 1000,  # steps between checkpoints (resume points)
            },
            "eval": {"samples": 64},  # examples per length
        }
    )
    return c
