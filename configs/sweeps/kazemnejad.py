"""Reduced-scale reproduction of the decoder protocol (Kazemnejad et al. 2023, "The Impact of
Positional Encoding on Length Generalization in Transformers").

  python -m experiments.sweep --config=configs/sweeps/kazemnejad.py --workdir=runs/kazemnejad
  python -m experiments.sweep --config=configs/sweeps/kazemnejad.py:smoke \
      --workdir=/tmp/kz_smoke      # all 30 runs at the smoke scale (minutes)
  python -m experiments.sweep report --workdir=runs/kazemnejad
  python -m experiments.sweep --config=configs/sweeps/kazemnejad.py:pilot \
      --workdir=runs/kazemnejad_pilot   # one seed per rate, 3,000 steps: sizes the budgets

7 tasks x 5 encodings (none, t5 with 32 buckets shared by all layers, alibi, rope rotating
25% of each head's dimensions as the paper did, sinusoidal) = 35 runs; each run trains 5 seeds
at each of 2 learning rates (10 models) in one program, and the report picks the rate on
in-distribution exact match.

Task definitions, from their generators (McGill-NLP/length-generalization,
scripts/dataset_builders/make_{copy,reverse,sort,addition,parity}_dataset.py), without the
natural-language templates ("Copy: ...", "The answer is ..."): prompt SEP answer END.
  copy_repeat  one token repeated T times, the token uniform over 100 symbols ("repeat_single_
               char"; theirs gives each example of a length bin its own token, thousands of
               tokens for their 100k training set: 100 is a deliberate reduction, so that
               every token is seen often in 1,000 steps)
  copy_random  T tokens uniform over 100 symbols ("copy_multi_char")
  reverse      T tokens uniform over 100 symbols, reversed ("multi_char")
  reverse_2x   the same, answer reversed, NEXT, reversed ("multi_char_2x", the paper's reverse)
  sort         T tokens uniform over 50 symbols, sorted ("single_digit"; their multi-digit
               variant, numbers 10..9999, is not implemented)
  parity       T bits, answer their parity
  addition     decimal, operands of 1..8 digits at train (T = the longer operand); the trainer
               draws T uniformly, theirs is uniform over operand-length pairs (T ∝ 2T - 1)

Scale used here vs. published:
  model   3 blocks, width 64, 1 head of 64 dims (25% rotary = 16 dims, 8 frequencies, as on
          T5-base's 64-dim heads; the committed report's runs had 2 heads of 32, rotating 8),
          MLP 4x, pre-LN, causal (~0.15M parameters; width 128 with 4 blocks ran at 0.7
          steps/s for 10 models on one core, too slow for this sweep);
          published: decoder-only T5-base, 12 heads of 64 dims, ~107M parameters
  train   a fixed budget of 1,000 steps for every model (what this 2-core machine affords
          for 350 models; the committed report's runs trained to criterion under that cap,
          which the report states); batch 32, Adam at peak lr 2e-3 and 5e-3 (50 warmup,
          cosine), clip 1.0, 5 seeds; the report's gate: exact match >= 0.95 pooled over the
          training lengths and at the longest ones (pe_jax.rules.GATES)
          published: 40,000 steps, batch 64, lr 3e-5, 3 seeds
  lengths copy / reverse: train 2..20, test 21..40; sort, parity, addition: train 1..8,
          test 9..16 (addition: operand digits, as configs/addition.py's decoder protocol);
          every length evaluated (dense), 64 examples each
Exact match of the whole answer is the metric (teacher-forced, which equals greedy decoding).
Results: experiments/results/kazemnejad/ (report.md is generated from the runs).
"""

import ml_collections

from configs import addition, copy, parity, reverse, sort
from configs.sweeps.common import (
    PILOT_GATE,
    encoding,
    fixed_budget,
    published_numbers,
    sweep_config,
)

# (label, task config module, extra arg after "protocol=decoder", (train max, test max) or
# None for the task file's decoder lengths: sort, parity, addition train 1..8, test 9..16).
TASKS = (
    # Ordered by what this machine's cap can learn (the main job learns copy_repeat at this
    # model size; the 2026-11-29 runs learned sort and copy_repeat, nearly parity, and none
    # of the others), so that a partial sweep holds the informative runs first.
    # One token repeated, drawn from 100 symbols: the model must copy which token, not only
    # how many (a binary alphabet would make it counting).
    ("copy_repeat", copy, "task_options.variant=repeat,task_options.num_symbols=100", (20, 40)),
    ("sort", sort, "", None),  # 50 symbols: configs/sort.py's decoder options
    ("parity", parity, "", None),
    ("reverse", reverse, "", (20, 40)),  # 100 symbols: configs/reverse.py's decoder options
    ("copy_random", copy, "task_options.num_symbols=100", (20, 40)),
    ("reverse_2x", reverse, "task_options.variant=2x", (20, 40)),
    ("addition", addition, "", None),  # decimal, both operands 1..8 digits at train
)


# What the paper published, carried over with its source (../shared/PROTOCOLS.md):
# per task, OOD exact match mean ± sd over 3 seeds from the official repository's result files
# (McGill-NLP/length-generalization, results/*.jsonl), for the splits whose task we run:
# rsc = copy_repeat, cmc = copy_random, mc = reverse, mc2x = reverse_2x. Sort, parity and
# addition have no printed per-task numbers (plots only; addition ~0.07 for every encoding).
SOURCE = "Kazemnejad et al. 2023, official results files"
PER_TASK = {
    "copy_repeat": {  # rsc
        "none": (0.986, 0.005),
        "t5": (0.771, 0.043),
        "alibi": (0.289, 0.025),
        "rope": (0.000, 0.000),
        "sinusoidal": (0.000, 0.000),
    },
    "copy_random": {  # cmc
        "none": (0.305, 0.019),
        "t5": (0.420, 0.011),
        "alibi": (0.331, 0.010),
        "rope": (0.011, 0.006),
        "sinusoidal": (0.028, 0.004),
    },
    "reverse": {  # mc
        "none": (0.230, 0.008),
        "t5": (0.242, 0.019),
        "alibi": (0.171, 0.009),
        "rope": (0.077, 0.061),
        "sinusoidal": (0.023, 0.009),
    },
    "reverse_2x": {  # mc2x, the paper's Reverse panel
        "none": (0.473, 0.005),
        "t5": (0.448, 0.031),
        "alibi": (0.195, 0.033),
        "rope": (0.053, 0.004),
        "sinusoidal": (0.011, 0.002),
    },
}
# The headline is an aggregate: mean reciprocal rank over the paper's 17 dataset splits x 3
# seeds; judged as an aggregate over the tasks where both encodings are learned.
MRR = {"none": 0.687, "t5": 0.549, "alibi": 0.502, "rope": 0.330, "sinusoidal": 0.215}
PUBLISHED = {
    "numbers": published_numbers(PER_TASK, seeds=3, source=SOURCE),
    "aggregates": [
        dict(
            kind="mean_reciprocal_rank",
            values=MRR,
            over="17 dataset splits x 3 seeds",
            source="Kazemnejad et al. 2023, Figure 1 (mean reciprocal rank)",
        )
    ],
}


def _task_config(module, extra: str, lengths, smoke: bool):
    arg = ",".join(filter(None, ["protocol=decoder", "smoke" if smoke else "", extra]))
    config = module.get_config(arg)
    if lengths and not smoke:
        # Train 2..20; evaluate every length 2..40, so in- and out-of-distribution means come
        # from the same run (the summaries split at the train max).
        config.train.max_length, config.eval.max_length = lengths
    return config


# The pilot (arg "pilot"): the tasks issue "Reach" names (addition separates nothing: every
# published encoding scores ~0.07), one seed at each rate, up to PILOT_STEPS steps, the gate
# over every training length every 250 steps. Its report proposes each task's budget.
PILOT_TASKS = ("copy_repeat", "copy_random", "reverse", "reverse_2x", "sort", "parity")
PILOT_STEPS = 3000


def get_config(arg: str | None = None):
    """arg: "" for the scale above, "smoke" for a seconds-long check of every run, "pilot"
    for the pilot that sizes each task's budget."""
    arg = arg or ""
    if arg not in ("", "smoke", "pilot"):
        raise ValueError(f"arg must be one of ('', 'smoke', 'pilot'), got {arg!r}.")
    smoke, pilot = arg == "smoke", arg == "pilot"
    c = sweep_config(
        name="Decoder protocol (Kazemnejad et al. 2023), reduced scale"
        + (": pilot" if pilot else ""),
        tasks=[
            dict(label=label, config=_task_config(module, extra, lengths, smoke))
            for label, module, extra, lengths in TASKS
            if not pilot or label in PILOT_TASKS
        ],
        encodings=[
            encoding("none", "none"),
            encoding("t5", "t5", num_buckets=32),  # shared by all layers (model.share_encoding)
            encoding("alibi", "alibi"),
            encoding("rope", "rope", rotary_fraction=0.25),  # the paper's partial rotary
            encoding("sinusoidal", "sinusoidal"),
        ],
        seeds=(0,) if pilot else (0, 1, 2, 3, 4),
        protocol="decoder",
        published=PUBLISHED,
    )
    c.pilot = pilot
    c.metric = "exact_match"  # the published metric of this protocol
    if smoke:
        c.overrides = ml_collections.ConfigDict({"train": {"steps": 10}})
        return c
    c.overrides = ml_collections.ConfigDict(
        {
            "model": {
                "num_layers": 3,  # published: T5-base (12 layers)
                "width": 64,  # published 768
                # One head of 64 dims, as T5-base's heads: RoPE at 25% rotates 16 dims
                # (8 frequencies), as published (the committed 2-head runs rotated 8). ALiBi's
                # one head gets the slope 2^-8 of its geometric sequence (Press et al. 2022).
                "num_heads": 1,
                "share_encoding": True,  # one T5 table for all layers, as T5 does
            },
            # Published: 40,000 steps, batch 64, lr 3e-5 for a 107M model, no grid. Here a
            # fixed budget of 1,000 steps for every model (the pilots size each task's own).
            "train": fixed_budget(
                steps=PILOT_STEPS if pilot else 1000,
                learning_rates=(2e-3, 5e-3),
                warmup_steps=50,
                **(PILOT_GATE if pilot else {}),
            ),
            # Dense: every length of the task's range, 128 examples each, 64 per call.
            "eval": {"samples": 64, "batch_size": 64},
        }
    )
    return c
