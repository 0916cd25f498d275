"""Reverse: output the input backwards (Deletang et al. 2023; Kazemnejad et al. 2023).

  python -m experiments.train --config=configs/reverse.py --workdir=runs/rope
  python -m experiments.train \
      --config=configs/reverse.py:smoke,model.encoding=alibi --workdir=runs/s

After ":" come "protocol=encoder|decoder", presets ("smoke", "published") and key=value fields,
comma-separated. Lengths: encoder train 1..16, eval 1..64 (published 1..40 / 41..500); decoder
train 2..16, eval 2..32 (published 2..20 / 21..40). Symbols: binary in the encoder protocol,
100 in the decoder protocol; "task_options.variant=2x" gives Kazemnejad et al.'s "2x" reverse.
"""

from configs.base import task_config


def get_config(arg: str | None = None):
    return task_config(
        "reverse",
        arg,
        task_options=dict(
            num_symbols=2,  # binary alphabet as in Deletang et al.
            variant="single",  # "single" (reversed once) or "2x" (reversed, NEXT, reversed)
        ),
        # Kazemnejad et al. draw from 100 tokens (make_reverse_dataset.py).
        decoder_task_options=dict(num_symbols=100),
        lengths={"encoder": (1, 16, 1, 64), "decoder": (2, 16, 2, 32)},
    )
