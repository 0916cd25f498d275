"""The runs of a sweep: the cross product tasks x encodings of a sweep config, each run (all
seeds in one program) in its own folder <workdir>/<task>/<encoding>; which of them to train
(`--only` patterns, `--shard` i/n), and whether one is finished.

A sweep config (see configs/sweeps/quick.py) is an ml_collections ConfigDict with:
  name       the report's title.
  tasks      [{"label": str, "config": <experiment ConfigDict from configs/<task>.py>}].
  encodings  [{"label": str, "name": <registry name>, "options": {...}, "overrides": {...}}]
             ("options" and "overrides" optional).
  seeds      seeds of every run, trained together.
  overrides  nested {section: {field: value}} applied to every run's config.
  metric     the report's metric ("" = per protocol).
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import ml_collections

from pe_jax.runfiles import RESULTS, DamagedFileError, read_results
from pe_jax.training import set_field

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


@dataclasses.dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: a task label, an encoding label and the full experiment config."""

    task: str
    encoding: str
    config: ml_collections.ConfigDict

    @property
    def name(self) -> str:
        """The run's sub-folder "task/encoding", also the name `--only` matches."""
        return f"{self.task}/{self.encoding}"

    def workdir(self, root: str | os.PathLike) -> Path:
        return Path(root) / self.task / self.encoding


def _check_label(where: str, label) -> str:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ValueError(
            f"{where} must be a folder-safe label (letters, digits, _ . + = -), got {label!r}."
        )
    return label


def _merge(config: ml_collections.ConfigDict, overrides, where: str) -> None:
    """Sets the fields of nested mapping `overrides` in `config` with `set_field`.

    task_options and encoding_options are free-form: an override replaces their entries.
    Unknown fields and values their field does not allow are errors naming `where`.
    """
    for key, value in overrides.items():
        current = config.get(key) if key in config else None
        if isinstance(current, ml_collections.ConfigDict) and hasattr(value, "items"):
            if key in ("task_options", "encoding_options"):
                value = {**current.to_dict(), **dict(value.items())}
            else:
                _merge(current, value, f"{where}.{key}")
                continue
        set_field(config, key, value, where=where)


def _override_options(overrides) -> dict:
    """The model.encoding_options entries of a nested overrides mapping ({} when none)."""
    model = overrides.get("model") if hasattr(overrides, "get") else None
    options = model.get("encoding_options") if hasattr(model, "get") else None
    return dict(options.items()) if hasattr(options, "items") else {}


def expand_sweep(sweep: ml_collections.ConfigDict) -> list[SweepRun]:
    """The runs of a sweep config, task-major in the listed order.

    Each run's config is a copy of its task's config with `sweep.overrides`, then the
    encoding's `overrides`, then model.encoding / model.encoding_options and seeds set.

    Raises:
      ValueError: a missing or empty field, a duplicate or unsafe label, an unknown field in
        an override; each naming where (e.g. `sweep.encodings[2].label`).
    """
    for field in ("tasks", "encodings", "seeds"):
        if field not in sweep or not sweep[field]:
            raise ValueError(f"sweep.{field} must be a non-empty list, got {sweep.get(field)!r}.")
    seeds = tuple(int(s) for s in sweep.seeds)
    common = sweep.get("overrides") or {}
    tasks = []
    for i, task in enumerate(sweep.tasks):
        label = _check_label(f"sweep.tasks[{i}].label", task.get("label"))
        if not isinstance(task.get("config"), ml_collections.ConfigDict):
            raise ValueError(
                f"sweep.tasks[{i}].config must be an experiment ConfigDict (from "
                f"configs/<task>.py get_config), got {type(task.get('config')).__name__}."
            )
        tasks.append((label, task["config"]))
    encodings = []
    for j, enc in enumerate(sweep.encodings):
        label = _check_label(f"sweep.encodings[{j}].label", enc.get("label"))
        if not isinstance(enc.get("name"), str):
            raise ValueError(f"sweep.encodings[{j}].name must be a registry name, got {enc!r}.")
        encodings.append((j, label, enc))
    for kind, labels in (
        ("tasks", [t for t, _ in tasks]),
        ("encodings", [e[1] for e in encodings]),
    ):
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"sweep.{kind} labels must be unique, got duplicates {dupes}.")

    runs = []
    for task_label, base in tasks:
        for j, label, enc in encodings:
            config = copy.deepcopy(base)
            _merge(config, common, "sweep.overrides")
            _merge(config, enc.get("overrides") or {}, f"sweep.encodings[{j}].overrides")
            where = f"sweep.encodings[{j}]"
            set_field(config, "model.encoding", enc["name"], where=where)
            # Options set for every encoding (sweep.overrides), then the encoding's own
            # overrides, then its options; the task file's options (for its own default
            # encoding) do not carry over to another encoding.
            options = {
                **_override_options(common),
                **_override_options(enc.get("overrides") or {}),
                **dict(enc.get("options") or {}),
            }
            set_field(config, "model.encoding_options", options, where=where)
            set_field(config, "seeds", seeds, where="sweep")
            runs.append(SweepRun(task=task_label, encoding=label, config=config))
    return runs


def select_runs(runs: Sequence[SweepRun], only: str | Sequence[str] | None) -> list[SweepRun]:
    """The runs matching any of the `only` patterns (all runs when None or empty).

    A pattern is an fnmatch pattern over "task/encoding" ("reverse/rope", "*/alibi"); one
    without "/" matches a run whose task label or encoding label matches it ("rope", "copy").

    Raises:
      ValueError: a pattern that matches no run (a typo would otherwise run nothing).
    """
    if isinstance(only, str):
        only = [p.strip() for p in only.split(",")]
    patterns = [p for p in (only or []) if p]
    if not patterns:
        return list(runs)

    def matches(run: SweepRun, pattern: str) -> bool:
        if "/" in pattern:
            return fnmatch.fnmatchcase(run.name, pattern)
        return fnmatch.fnmatchcase(run.task, pattern) or fnmatch.fnmatchcase(run.encoding, pattern)

    for pattern in patterns:
        if not any(matches(r, pattern) for r in runs):
            raise ValueError(
                f"only: pattern {pattern!r} matches no run; runs are {[r.name for r in runs]}."
            )
    return [r for r in runs if any(matches(r, p) for p in patterns)]


def config_json(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json())


def is_finished(run: SweepRun, root: str | os.PathLike) -> bool:
    """Whether the run's folder holds results.json of exactly this config (a damaged one is
    not finished: `train_and_evaluate` names it, or replaces it under overwrite)."""
    path = run.workdir(root) / RESULTS
    try:
        return path.exists() and read_results(path).config == config_json(run.config)
    except DamagedFileError:
        return False


def take_shard(runs: Sequence, shard) -> list:
    """The runs whose index in `runs` mod n is i, for `shard` "i/n" (all runs for None)."""
    parsed = parse_shard(shard)
    if parsed is None:
        return list(runs)
    i, n = parsed
    return [run for k, run in enumerate(runs) if k % n == i]


def parse_shard(shard: str | Sequence[int] | None) -> tuple[int, int] | None:
    """ "i/n" (or (i, n)) -> (i, n) with 0 <= i < n; None or "" -> None.

    Raises:
      ValueError: anything else, naming the value.
    """
    if shard is None or shard == "":
        return None
    try:
        i, n = (int(x) for x in (shard.split("/") if isinstance(shard, str) else shard))
    except (TypeError, ValueError):
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(f'shard must be "i/n" with 0 <= i < n, got {shard!r}.')
    return i, n
