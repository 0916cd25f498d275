"""The optimizer: optax Adam(W), warmup + cosine or constant schedule, global-norm clipping."""

from __future__ import annotations

import optax

from pe_jax._validate import check_choice, check_positive, check_positive_int

SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("adam", "adamw")


def make_schedule(
    *, learning_rate: float, total_steps: int, warmup_steps: int = 0, schedule: str = "constant"
) -> optax.Schedule:
    """Linear warmup to `learning_rate` over `warmup_steps`, then constant or cosine decay to 0.

    Raises:
      ValueError: non-positive learning_rate / total_steps, warmup_steps outside
        [0, total_steps), unknown schedule.
    """
    learning_rate = check_positive("learning_rate", learning_rate)
    total_steps = check_positive_int("total_steps", total_steps)
    check_choice("schedule", schedule, SCHEDULES)
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"warmup_steps must be in [0, total_steps={total_steps}), got {warmup_steps}."
        )
    if schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, learning_rate, max(warmup_steps, 1), total_steps, end_value=0.0
        )
    if warmup_steps == 0:
        return optax.constant_schedule(learning_rate)
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, learning_rate, warmup_steps),
            optax.constant_schedule(learning_rate),
        ],
        [warmup_steps],
    )


def make_optimizer(
    *,
    learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
    schedule: str = "constant",
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    clip_norm: float | None = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
) -> optax.GradientTransformation:
    """Global-norm clipping (Pascanu et al. 2013) followed by Adam / AdamW (Loshchilov & Hutter).

    The encoder protocol (Deletang et al. 2023) uses Adam with gradient clipping at 1.0.

    Raises:
      ValueError: unknown optimizer, negative weight_decay, non-positive clip_norm, plus the
        errors of `make_schedule`.
    """
    check_choice("optimizer", optimizer, OPTIMIZERS)
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
    if optimizer == "adam" and weight_decay:
        raise ValueError("weight_decay needs optimizer='adamw' (Adam has no decoupled decay).")
    lr = make_schedule(
        learning_rate=learning_rate,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        schedule=schedule,
    )
    if optimizer == "adamw":
        opt = optax.adamw(lr, b1=b1, b2=b2, weight_decay=weight_decay)
    else:
        opt = optax.adam(lr, b1=b1, b2=b2)
    if clip_norm is None:
        return opt
    return optax.chain(optax.clip_by_global_norm(check_positive("clip_norm", clip_norm)), opt)
