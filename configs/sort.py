"""Sort: output the input symbols in increasing order (Deletang et al.; Kazemnejad et al.).

  python -m experiments.train --config=configs/sort.py --workdir=runs/rope
  python -m experiments.train \
      --config=configs/sort.py:smoke,model.encoding=alibi --workdir=runs/s

After ":" come "protocol=encoder|decoder", presets ("smoke", "published") and key=value fields,
comma-separated. Lengths: encoder train 1..16, eval 1..64 (published 1..40 / 41..500); decoder
train 1..8, eval 1..16 (published <= 8 / 9..16). Symbols: 5 in the encoder protocol, 50 in the
decoder protocol.
"""

from configs.base import task_config


def get_config(arg: str | None = None):
    return task_config(
        "sort",
        arg,
        task_options=dict(num_symbols=5),  # vocabulary of 5 symbols as in Deletang et al.
        # Kazemnejad et al.'s single-token sort draws from 50 tokens (make_sort_dataset.py).
        decoder_task_options=dict(num_symbols=50),
        lengths={"encoder": (1, 16, 1, 64), "decoder": (1, 8, 1, 16)},
    )
