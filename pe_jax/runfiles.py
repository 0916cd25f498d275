"""The run files: their names, results.json as a typed record, atomic writes, the sweep manifest.

The one owner of what a run folder holds. Training writes these files and reporting reads them;
both import this module, which imports only the standard library and NumPy so that it sits below
every package of pe_jax (reporting may import nothing above the encodings).

A run folder: config.json (the experiment config), metrics.jsonl (one JSON record per logged
step, ``{"step": t, "loss": [M], ...}``, a gate record ``{"step": t, "event": "gate", "gate":
{"exact_match": [M], "token_accuracy": [M], "done": [M]}}`` at each gate evaluation, then
``{"step": steps, "event": "eval", ...}``; M models, see `Results`), checkpoints/ (Orbax) and,
once finished, results.json (`Results`) and examples.npz (the per-example scores of the
evaluation, `write_examples`). A sweep folder holds
sweep.json (the manifest) and one run folder per <task>/<encoding>.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = "results.json"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
MANIFEST = "sweep.json"
CLAIM = "claim.json"  # a sweep worker's claim on a run (pe_jax.training claims)
FAILED = "failed.json"  # the error of a run that failed under a sweep executor
EXAMPLES = "examples.npz"

# The results.json schema. Files written before the version was recorded carry no
# "schema_version" and have exactly the fields of version 1, so an absent version reads as 1.
# Version 2 adds the models axis and the gate: models, gate, learned, steps_trained, until
# (absent, hence None, in version 1 files, whose per-model axis is the seeds), and the optional
# baselines and compile_s. Version 3 adds the optional cpu_seconds_per_step and compile_seconds
# (absent, hence None, in older files).
SCHEMA_VERSION = 3
# Fields written even when None: in version 2, "until": null says the run trained to the cap.
_WRITTEN_AS_NULL = ("until",)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flushes a folder's entries (a rename or a new file in it) to stable storage.

    A no-op where folders cannot be opened for reading (some platforms and file systems).
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # EINVAL: this file system does not sync folders
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically and durably: a temporary file in the same folder,
    fsynced, renamed over `path`, then the folder fsynced.

    A reader never sees a half-written file: it finds the old contents or the new ones, also
    after a crash or a power cut (once this returns, the new ones). The temporary name is
    unique to the writer (process and thread), so concurrent writers (sweep processes writing
    the same manifest) never rename each other's half-written file.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """`write_bytes_atomic` of `text` as UTF-8 (reports, CSV files, Markdown)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Writes `data` as JSON with `write_bytes_atomic` (atomic and durable)."""
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))


# What to do about a damaged run file, said by every error that names one.
REPAIR_HINT = "delete it, or rerun with --overwrite to replace it"


class DamagedFileError(ValueError):
    """A run file that cannot be read: not UTF-8, not JSON, or not what the file should hold.

    The message names the file and says what to do about it.
    """


def damaged(path: str | os.PathLike, why: str, hint: str = REPAIR_HINT) -> DamagedFileError:
    """The error for the damaged file `path`: its name, what is wrong (`why`) and `hint`."""
    return DamagedFileError(f"{path} is damaged ({why}); {hint}.")


def read_json(path: str | os.PathLike, *, expect: type | None = dict, hint: str = REPAIR_HINT):
    """The parsed JSON of `path`, the one loader of the run files.

    Args:
      path: the file.
      expect: the JSON type the file must hold (dict = an object); None accepts any.
      hint: what the error tells the user to do.

    Raises:
      DamagedFileError: (a ValueError) the file is empty, not UTF-8, not valid JSON, or not of
        type `expect`; naming the file, what is wrong and `hint`.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise damaged(path, f"not UTF-8 text: {e}", hint) from e
    except json.JSONDecodeError as e:
        why = "empty" if not e.doc.strip() else f"not valid JSON: {e}"
        raise damaged(path, why, hint) from e
    if expect is not None and not isinstance(data, expect):
        why = f"it holds JSON {_json_name(type(data))}, not {_json_name(expect)}"
        raise damaged(path, why, hint)
    return data


def _json_name(kind: type) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return names.get(kind, "null" if kind is type(None) else "a number")


def _metrics_record(line: bytes) -> dict | None:
    """The record of one metrics.jsonl line, or None when the line is not a valid record."""
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    step = record.get("step") if isinstance(record, dict) else None
    if isinstance(step, bool) or not isinstance(step, int):
        return None
    return record


def truncate_metrics(path: str | os.PathLike, last_step: int) -> None:
    """Keeps the metrics.jsonl records of steps up to `last_step` (the restored checkpoint).

    A killed run may have logged later steps, an "eval" event or a half-written last line;
    dropping them lets a resumed run append without duplicates. Gate records of kept steps stay
    (a gate runs before the checkpoint of its step is saved). Lines that are not a record
    (binary bytes, other JSON, a record without an integer "step") are dropped as well. The
    file is replaced atomically.
    """
    path = Path(path)
    if not path.exists():
        return
    kept = []
    for line in path.read_bytes().splitlines():
        record = _metrics_record(line)
        if (
            record is not None
            and record["step"] <= last_step
            and record.get("event", "gate") == "gate"
        ):
            kept.append(line + b"\n")
    write_bytes_atomic(path, b"".join(kept))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Results:
    """A finished run, all its models: the contents of results.json.

    Shapes: S seeds, R learning rates, M = S x R models (M = S in version 1 files and with one
    rate), n evaluated lengths. Metrics are nested lists (JSON), not arrays. Every per-model
    array is ordered as `models`: model m has seed seeds[m // R] and rate rates[m % R].

    Attributes:
      config: the experiment config as JSON (what config.json holds).
      task, protocol, encoding: the task name, "encoder" | "decoder", the encoding's registry name.
      seeds: [S] the seeds trained together.
      train_max_length: the longest training length; longer lengths are out of distribution.
      lengths: [n] evaluated input lengths.
      metrics: {name: [M][n]} token_accuracy, exact_match and loss per model and length.
      summary: {name: {"in_distribution": [M], "out_of_distribution": [M]}} means.
      num_params: parameters of one model.
      steps: training steps of the run (the cap; see steps_trained).
      time_per_step_s: steady-state seconds per training step (one step trains every model).
      bucket_means, batch_size, train_time_s, steps_run_this_session, eval_time_s,
      num_compilations, jax_version, backend, device_kind, device_count, process_count,
      mesh_shape, platform: recorded by the runner; None when a file (e.g. a hand-made one)
        lacks them, and then left out of its JSON.
      baselines: what a model scores without learning the task, at the evaluated lengths, as
        `pe_jax.tasks` task_baselines returns it: {"lengths": [n], "samples", "answer_tokens",
        rule: {"exact_match": [n], "token_accuracy": [n], "exact_match_se": [n],
        "token_accuracy_se": [n]}} for rule in uniform, majority, input_blind. Optional.
      models: [M] {"seed": int, "learning_rate": float} (version 2).
      gate: the final held-out gate (version 2): {"metric": "exact_match", "threshold": float,
        "lengths": [the longest training lengths], "exact_match": [M], "token_accuracy": [M]}.
      learned: [M] whether the model's gate exact match reached the threshold (version 2);
        a model that did not is left out of orderings.
      steps_trained: [M] optimizer steps each model took: fewer than `steps` for a model
        stopped by `until` (version 2).
      until: the gate exact match at which a model stopped training; None (null) = off.
      compile_s: {"train": seconds, "eval": seconds} spent tracing, lowering and compiling the
        training programs (init and every length bucket's step) and the evaluation programs
        (sampler and buckets) in this session; None in files older than schema version 2.
      cpu_seconds_per_step: process CPU seconds (every thread, user and system) per training
        step after the first, leaving out the gate, checkpoints and compilations: the cost of
        a step, unlike `time_per_step_s` unaffected by other work on the machine. None in files
        older than schema version 3, and in a session that ran fewer than two steps.
      compile_seconds: process CPU seconds of this session's first training step, which
        compiles the step program (or loads it from the compilation cache) and runs it once.
        None in files older than schema version 3.
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
    cpu_seconds_per_step: float | None = None
    compile_seconds: float | None = None
    jax_version: str | None = None
    backend: str | None = None
    device_kind: str | None = None
    device_count: int | None = None
    process_count: int | None = None
    mesh_shape: list[int] | None = None
    platform: str | None = None
    baselines: dict | None = None
    models: list[dict] | None = None
    gate: dict | None = None
    learned: list[bool] | None = None
    steps_trained: list[int] | None = None
    until: float | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict:
        """The JSON object of results.json (fields that are None are left out, but "until"
        of a version 2 file, whose null says that the run had no stopping criterion)."""
        keep_null = _WRITTEN_AS_NULL if self.schema_version >= 2 else ()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None or f.name in keep_null
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
    """Writes <workdir>/results.json atomically and durably (`write_json_atomic`)."""
    write_json_atomic(Path(workdir) / RESULTS, results.to_json())


def read_results(path: str | os.PathLike) -> Results:
    """The `Results` of a results.json file (or of the run folder holding one).

    Raises:
      DamagedFileError: (a ValueError) the file is damaged or not a results.json of a known
        schema; naming it and what to do.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    data = read_json(path)
    try:
        return Results.from_json(data, source=str(path))
    except ValueError as e:
        raise DamagedFileError(f"{str(e).rstrip('.')}; {REPAIR_HINT}.") from e


def write_examples(
    workdir: str | os.PathLike,
    *,
    lengths,
    exact_match,
    token_accuracy,
    eval_seed: int,
) -> Path:
    """Writes <workdir>/examples.npz atomically: the evaluation's score of every example.

    M models (the model axis of results.json's metrics), n lengths, E examples per length; the
    examples of a length are the same for every model and every run with the same eval seed,
    so two runs can be compared example by example.

    Args:
      lengths: int [n] evaluated lengths.
      exact_match: bool [M, n, E]: every answer slot of the example right.
      token_accuracy: float [M, n, E]: the fraction of its answer slots right.
      eval_seed: the evaluation seed the examples were drawn with.

    Raises:
      ValueError: shapes that disagree.
    """
    lengths = np.asarray(lengths, np.int32)
    exact_match = np.asarray(exact_match, bool)
    token_accuracy = np.asarray(token_accuracy, np.float32)
    if exact_match.ndim != 3 or exact_match.shape != token_accuracy.shape:
        raise ValueError(
            "exact_match and token_accuracy must share one shape [M, n, E], got "
            f"{exact_match.shape} and {token_accuracy.shape}."
        )
    if lengths.shape != (exact_match.shape[1],):
        raise ValueError(f"lengths must have shape [{exact_match.shape[1]}], got {lengths.shape}.")
    path = Path(workdir) / EXAMPLES
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        lengths=lengths,
        exact_match=exact_match,
        token_accuracy=token_accuracy,
        eval_seed=np.int64(eval_seed),
    )
    write_bytes_atomic(path, buffer.getvalue())
    return path


def read_examples(path: str | os.PathLike) -> dict | None:
    """The per-example scores of a run folder (or of its examples.npz); None if it has none.

    Returns:
      {"lengths": int [n], "exact_match": bool [M, n, E], "token_accuracy": float32 [M, n, E],
       "eval_seed": int}.

    Raises:
      ValueError: the file is damaged (naming it).
    """
    path = Path(path)
    if path.is_dir():
        path = path / EXAMPLES
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            out = {k: data[k] for k in ("lengths", "exact_match", "token_accuracy", "eval_seed")}
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path} is damaged ({e}).") from e
    out["eval_seed"] = int(out["eval_seed"])
    return out


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
      DamagedFileError: (a ValueError) the manifest is damaged (naming the file).
    """
    path = Path(root) / MANIFEST
    hint = "delete it, or rerun the sweep, which writes it again"
    return read_json(path, hint=hint) if path.exists() else None


# claim.json: {"host", "pid", "started", "heartbeat_s", "token"} and, since issue 28, "boot_id"
# and "pid_ns" (which kernel and pid namespace "pid" belongs to). failed.json: {"error",
# "host", "pid", "time"} and, since issue 28, "id" (what a sweep remembers it by).
_CLAIM_FIELDS = {"host": str, "pid": int, "token": str}
_FAILED_FIELDS = {"error": str}
CLAIM_HINT = "delete it to let the run be claimed again"
FAILED_HINT = "delete it to let the run be retried"


def _check_fields(path: Path, data: dict, fields: dict, hint: str) -> dict:
    for name, kind in fields.items():
        value = data.get(name)
        if name not in data or isinstance(value, bool) or not isinstance(value, kind):
            raise damaged(path, f"{name!r} must be {_json_name(kind)}, got {value!r}", hint)
    return data


def read_claim_file(path: str | os.PathLike) -> dict | None:
    """The record of a claim.json plus "heartbeat" (the file's mtime); None when absent.

    An empty file (a claim being created, or left empty by a crash right after its creation)
    reads as {"heartbeat": mtime} alone.

    Raises:
      DamagedFileError: a file that is not empty and not a claim record, naming it.
    """
    path = Path(path)
    try:
        mtime = path.stat().st_mtime
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if not raw:
        return {"heartbeat": mtime}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise damaged(path, f"not a JSON claim record: {e}", CLAIM_HINT) from e
    if not isinstance(data, dict):
        raise damaged(path, f"it holds JSON {_json_name(type(data))}, not an object", CLAIM_HINT)
    return {**_check_fields(path, data, _CLAIM_FIELDS, CLAIM_HINT), "heartbeat": mtime}


def read_failure(path: str | os.PathLike) -> dict | None:
    """The record of a failed.json with its "id" (older files: host:pid:time); None if absent.

    Raises:
      DamagedFileError: the file is not a failure record, naming it.
    """
    path = Path(path)
    try:
        data = read_json(path, hint=FAILED_HINT)
    except FileNotFoundError:
        return None
    data = _check_fields(path, data, _FAILED_FIELDS, FAILED_HINT)
    if not isinstance(data.get("id"), str):
        data["id"] = f"{data.get('host')}:{data.get('pid')}:{data.get('time')}"
    return data


def read_gate_records(path: str | os.PathLike) -> list[dict]:
    """The gate records of a run folder's metrics.jsonl, in step order (empty without one).

    Each is {"step": t, "exact_match": [M], "token_accuracy": [M]}: the trainer's held-out gate
    at step t. Lines that are not a valid record are skipped, as `truncate_metrics` drops them.
    """
    path = Path(path) / METRICS
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        record = _metrics_record(line)
        if record is not None and record.get("event") == "gate":
            gate = record.get("gate")
            if isinstance(gate, dict):
                out.append({"step": record["step"], **gate})
    return sorted(out, key=lambda r: r["step"])
