"""Addition: binary, little-endian, operands splitting T-1 digits (Deletang et al.); decimal
with independent operand lengths in the decoder protocol (Kazemnejad et al. 2023).

  python -m experiments.train --config=configs/addition.py --workdir=runs/rope
  python -m experiments.train \
      --config=configs/addition.py:smoke,model.encoding=alibi --workdir=runs/s

After ":" come "protocol=encoder|decoder", presets ("smoke", "published") and key=value fields,
comma-separated. Lengths: encoder train 1..16, eval 1..64 (published 1..40 / 41..500); decoder:
longer operand 1..8 digits at train, 1..16 at eval (published: 1..8 / 9..16).
"""

from configs.base import task_config


def get_config(arg: str | None = None):
    return task_config(
        "addition",
        arg,
        task_options=dict(
            base=2,  # binary digits
            operands="split",  # the two operands share the T - 1 digit budget
            reverse_operands=True,  # little-endian operands
            reverse_answer=True,  # little-endian answer
        ),
        decoder_task_options=dict(
            base=10, operands="independent", reverse_operands=False, reverse_answer=False
        ),
        lengths={"encoder": (1, 16, 1, 64), "decoder": (1, 8, 1, 16)},
    )
