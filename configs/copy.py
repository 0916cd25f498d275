"""Copy: reproduce the input (Kazemnejad et al. 2023's headline task; encoder form as well).

  python -m experiments.train --config=configs/copy.py --workdir=runs/rope
  python -m experiments.train \
      --config=configs/copy.py:smoke,model.encoding=alibi --workdir=runs/s
  python -m experiments.train --config=configs/copy.py:protocol=decoder --workdir=runs/copy_dec

After ":" come "protocol=encoder|decoder", presets ("smoke", "published") and key=value fields,
comma-separated. Lengths: encoder train 1..16, eval 1..64; decoder train 2..16, eval 2..32
(published decoder protocol: train 2..20, test 21..40). The binary default is for quick runs:
Kazemnejad et al. copy over 100 tokens or more ("task_options.num_symbols=100"; see
configs/sweeps/kazemnejad.py).
"""

from configs.base import task_config


def get_config(arg: str | None = None):
    return task_config(
        "copy",
        arg,
        task_options=dict(
            variant="random",  # "random" tokens, or "repeat": one token repeated T times
            num_symbols=2,  # alphabet size of the copied tokens
        ),
        lengths={"encoder": (1, 16, 1, 64), "decoder": (2, 16, 2, 32)},
    )
