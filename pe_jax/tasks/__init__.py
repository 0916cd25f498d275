"""Synthetic length-generalization tasks with jit-able on-device samplers (two layouts).

``task = get_task("reverse")``; ``task.sample(key, batch_size=B, length=T, layout="encoder")``
returns a `Batch` (inputs, targets, loss_mask, valid, lengths). `length` may be an
int array [B], traced under jit, with a static `width`: one program per (B, width).
"""

from pe_jax.tasks._arithmetic import Addition, Parity
from pe_jax.tasks._base import (
    EMPTY,
    END,
    FIRST_SYMBOL,
    LAYOUTS,
    PAD,
    SEP,
    Batch,
    Example,
    Task,
    bucket_width,
)
from pe_jax.tasks._baselines import BASELINES, task_baselines
from pe_jax.tasks._recall import AssociativeRecall, FlipFlop, SelectiveCopy
from pe_jax.tasks._registry import get_task, list_tasks, register_task
from pe_jax.tasks._sequence import Copy, Duplicate, MissingDuplicate, OddsFirst, Reverse, Sort

__all__ = [
    "BASELINES",
    "EMPTY",
    "END",
    "FIRST_SYMBOL",
    "LAYOUTS",
    "PAD",
    "SEP",
    "Addition",
    "AssociativeRecall",
    "Batch",
    "Copy",
    "Duplicate",
    "Example",
    "FlipFlop",
    "MissingDuplicate",
    "OddsFirst",
    "Parity",
    "Reverse",
    "SelectiveCopy",
    "Sort",
    "Task",
    "bucket_width",
    "get_task",
    "list_tasks",
    "register_task",
    "task_baselines",
]
