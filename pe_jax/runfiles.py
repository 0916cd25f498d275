"""The run files: their names, results.json as a typed record, atomic writes, the sweep manifest.

The one owner of what a run folder holds. Training writes these files and reporting reads them;
both import this module, which imports only the standard library so that it sits below every
package of pe_jax (reporting may import nothing above the encodings).

A run folder: config.json (the experiment config), metrics.jsonl (one JSON record per logged
step, ``{"step": t, "loss": [S], ...}``, then ``{"step": steps, "event": "eval", ...}``),
checkpoints/ (Orbax) and, once finished, results.json (`Results`). A sweep folder holds
sweep.json (the manifest) and one run folder per <task>/<encoding>.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

RESULTS = "results.json"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
MANIFEST = "sweep.json"

# The results.json schema. Files written before the version was recorded carry no
# "schema_version" and have exactly the fields of version 1, so an absent version reads as 1.
# Version 2 adds the optional compile_s.
SCHEMA_VERSION = 2


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Writes `data` as JSON to a temporary file in the same folder, then renames it over `path`.

    A reader never sees a half-written file: it finds the old contents or the new ones.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON of `path`.

    Raises:
      ValueError: the file is not valid JSON (naming the file).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is damaged (not valid JSON: {e}).") from e


def truncate_metrics(path: str | os.PathLike, last_step: int) -> None:
    """Keeps the metrics.jsonl records of steps up to `last_step` (the restored checkpoint).

    A killed run may have logged later steps, an "eval" event or a half-written last line;
    dropping them lets a resumed run append without duplicates.
    """
    path = Path(path)
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("step", -1) <= last_step and "event" not in record:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Results:
    """A finished run, all its seeds: the contents of results.json.

    Shapes: S seeds, n evaluated lengths. Metrics are nested lists (JSON), not arrays.

    Attributes:
      config: the experiment config as JSON (what config.json holds).
      task, protocol, encoding: the task name, "encoder" | "decoder", the encoding's registry name.
      seeds: [S] the seeds trained together.
      train_max_length: the longest training length; longer lengths are out of distribution.
      lengths: [n] evaluated input lengths.
      metrics: {name: [S][n]} token_accuracy, exact_match and loss per seed and length.
      summary: {name: {"in_distribution": [S], "out_of_distribution": [S]}} means.
      num_params: parameters of one model (one seed).
      steps: training steps of the run.
      time_per_step_s: steady-state seconds per training step (one step trains every seed).
      bucket_means, batch_size, train_time_s, steps_run_this_session, eval_time_s,
      num_compilations, jax_version, backend, device_kind, device_count, process_count,
      mesh_shape, platform: recorded by the runner; None when a file (e.g. a hand-made one)
        lacks them, and then left out of its JSON.
      compile_s: {"train": seconds, "eval": seconds} spent tracing, lowering and compiling the
        training programs (init and every length bucket's step) and the evaluation programs
        (sampler and buckets) in this session; None in files older than schema version 2.
      schema_version: the file's schema (SCHEMA_VERSION when written now).
    """

    config: dict = dataclasses.field(default_factory=dict)
    task: str
    protocol: str
    encoding: str
    seeds: list[int]
    train_max_length: int
    lengths: list[int]
    metrics: dict[str, list]
    summary: dict[str, dict[str, list]]
    num_params: int
    steps: int
    time_per_step_s: float
    bucket_means: dict[str, dict[str, list]] | None = None
    batch_size: int | None = None
    train_time_s: float | None = None
    steps_run_this_session: int | None = None
    eval_time_s: float | None = None
    num_compilations: dict[str, int] | None = None
    compile_s: dict[str, float] | None = None
    jax_version: str | None = None
    backend: str | None = None
    device_kind: str | None = None
    device_count: int | None = None
    process_count: int | None = None
    mesh_shape: list[int] | None = None
    platform: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict:
        """The JSON object of results.json (fields that are None are left out)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }

    @classmethod
    def from_json(cls, data: dict, *, source: str = "results") -> Results:
        """The `Results` of a parsed results.json; `source` names it in errors.

        Raises:
          ValueError: not an object, a missing required field, an unknown field, or a
            schema_version newer than SCHEMA_VERSION.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{source} must hold a JSON object, got {type(data).__name__}.")
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            raise ValueError(
                f"{source} has schema_version {version!r}; this pe_jax reads versions 1 to "
                f"{SCHEMA_VERSION}."
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"{source} has unknown fields {unknown}; known: {sorted(fields)}.")
        required = [
            name
            for name, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"{source} lacks the fields {missing}.")
        return cls(**{**data, "schema_version": version})


def write_results(workdir: str | os.PathLike, results: Results) -> None:
    """Writes <workdir>/results.json atomically."""
    write_json_atomic(Path(workdir) / RESULTS, results.to_json())


def read_results(path: str | os.PathLike) -> Results:
    """The `Results` of a results.json file (or of the run folder holding one).

    Raises:
      ValueError: the file is damaged or not a results.json of a known schema (naming it).
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    return Results.from_json(read_json(path), source=str(path))


def write_manifest(root: str | os.PathLike, manifest: dict) -> None:
    """Writes the sweep manifest <root>/sweep.json atomically, creating `root`.

    `manifest` holds: name (the report's title), tasks and encodings (label order), runs
    (every planned "task/encoding"), seeds, metric ("" = per protocol), sweep_config.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / MANIFEST, manifest)


def read_manifest(root: str | os.PathLike) -> dict | None:
    """The sweep manifest of folder `root`, or None if it has none.

    Raises:
      ValueError: the manifest is damaged (naming the file).
    """
    path = Path(root) / MANIFEST
    return read_json(path) if path.exists() else None
