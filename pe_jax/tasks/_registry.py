"""Tasks by name: `get_task`, `list_tasks` and `register_task`.

A task is one class that declares its name (`Task.name`); the registry is built from those
declarations, the built-in tasks' and any `register_task` adds.
"""

from __future__ import annotations

import dataclasses
import re

from pe_jax._names import did_you_mean
from pe_jax.tasks._arithmetic import Addition, Parity
from pe_jax.tasks._base import Task
from pe_jax.tasks._recall import AssociativeRecall, FlipFlop, SelectiveCopy
from pe_jax.tasks._sequence import Copy, Duplicate, MissingDuplicate, OddsFirst, Reverse, Sort

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Registers a task class under its declared name; returns the class (a decorator).

    The class subclasses `pe_jax.tasks.Task` as a frozen dataclass (its fields are the task's
    options, each with a default) and declares `name`; it defines `vocab_size`,
    `output_length(T)` and `_generate(key, lengths, max_length)`, which returns an `Example`
    (prompt int32 [B, P], prompt_length [B], answer [B, A], answer_length [B]); the layouts
    and the sampler come from `Task`. Registering the same class again (a re-run cell, a
    reloaded module) replaces it.

    Raises:
      ValueError: not a dataclass subclass of Task, a missing or malformed name, or a name
        another class has; naming the class.
    """
    what = f"register_task({getattr(cls, '__qualname__', cls)!r})"
    if not (isinstance(cls, type) and issubclass(cls, Task) and dataclasses.is_dataclass(cls)):
        raise ValueError(f"{what}: cls must be a dataclass subclass of pe_jax.tasks.Task.")
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"{what}: the class must declare name, a registry name of lower-case letters, "
            f"digits and _ (its own, not inherited), got {name!r}."
        )
    previous = _TASKS.get(name)
    same = previous is not None and (previous.__module__, previous.__qualname__) == (
        cls.__module__,
        cls.__qualname__,
    )
    if previous is not None and not same:
        raise ValueError(
            f"{what}: name {name!r} is already registered by "
            f"{previous.__module__}.{previous.__qualname__}; choose another name."
        )
    _TASKS[name] = cls
    return cls


for _builtin in (
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
):
    register_task(_builtin)


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
        raise ValueError(
            f"Unknown task name {name!r}.{did_you_mean(name, _TASKS)} Valid names: "
            f"{', '.join(list_tasks())}."
        )
    cls = _TASKS[name]
    allowed = tuple(field.name for field in dataclasses.fields(cls))
    for option in options:
        if option not in allowed:
            raise ValueError(
                f"Unknown option {option!r} for task {name!r}.{did_you_mean(option, allowed)} "
                f"Valid options: {allowed}."
            )
    return cls(**options)
