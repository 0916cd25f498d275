"""Tasks by name: `get_task` and `list_tasks`."""

from __future__ import annotations

import dataclasses

from pe_jax.tasks._arithmetic import Addition, Parity
from pe_jax.tasks._base import Task
from pe_jax.tasks._recall import AssociativeRecall, FlipFlop, SelectiveCopy
from pe_jax.tasks._sequence import Copy, Duplicate, MissingDuplicate, OddsFirst, Reverse, Sort

_TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        Copy,
        Reverse,
        Duplicate,
        Sort,
        Addition,
        Parity,
        OddsFirst,
        MissingDuplicate,
        SelectiveCopy,
        AssociativeRecall,
        FlipFlop,
    )
}


def list_tasks() -> tuple[str, ...]:
    """Returns the names accepted by `get_task`, sorted."""
    return tuple(sorted(_TASKS))


def get_task(name: str, **options) -> Task:
    """Returns the task `name` configured with `options` (its dataclass fields).

    Example: ``get_task("addition", base=10, operands="independent")``.

    Raises:
      ValueError: for an unknown name (listing the valid ones), an unknown option (naming it
        and listing the task's options) or an invalid option value (naming the option).
    """
    if name not in _TASKS:
        raise ValueError(f"Unknown task name {name!r}; valid names: {', '.join(list_tasks())}.")
    cls = _TASKS[name]
    allowed = tuple(field.name for field in dataclasses.fields(cls))
    for option in options:
        if option not in allowed:
            raise ValueError(
                f"Unknown option {option!r} for task {name!r}; valid options: {allowed}."
            )
    return cls(**options)
