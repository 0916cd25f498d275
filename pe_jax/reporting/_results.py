"""Reading finished runs: results.json files under a folder -> `Run` records and tidy rows.

Nothing here imports the model, the tasks or the trainer: a report needs only the files, so
it can be rebuilt anywhere (a laptop without the training dependencies' state, a notebook).
The files are decoded by their owner, `pe_jax.runfiles`; the sweep manifest is read only to
order the tables as the sweep listed them and to name the runs that have not finished.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import warnings
from pathlib import Path

import numpy as np

from pe_jax.runfiles import (
    RESULTS,
    DamagedFileError,
    Results,
    read_examples,
    read_manifest,
    read_results,
)

# Exact match first, per-token accuracy beside it (the bench's order), then the loss.
METRICS = ("exact_match", "token_accuracy", "loss")


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished run (all its seeds) as read from its results.json.

    Attributes:
      task: the task label: the sweep's task folder name, else results.task.
      encoding: the encoding label: the sweep's encoding folder name, else results.encoding.
      path: the results.json file.
      results: its decoded contents.
      steps_to_gate: [M] steps-to-gate as a report's results.csv recorded it (NaN: never), for
        a run read from the CSV; None: read from the run folder's gate records.
    """

    task: str
    encoding: str
    path: Path
    results: Results
    steps_to_gate: tuple[float, ...] | None = None

    @property
    def encoding_name(self) -> str:
        """The registry name of the encoding (e.g. "randomized_rope")."""
        return self.results.encoding

    @property
    def encoding_options(self) -> dict:
        return dict(self.results.config.get("model", {}).get("encoding_options") or {})

    @property
    def protocol(self) -> str:
        return self.results.protocol

    @property
    def seeds(self) -> list[int]:
        return list(self.results.seeds)

    @property
    def models(self) -> list[dict]:
        """[M] {"seed", "learning_rate"}: the model axis of the metrics (results.json's
        "models"; absent = one model per seed at config.train.learning_rate)."""
        if self.results.models:
            return [dict(m) for m in self.results.models]
        rate = self.results.config.get("train", {}).get("learning_rate")
        return [{"seed": s, "learning_rate": rate} for s in self.seeds]

    @property
    def baselines(self) -> dict | None:
        """The task's baselines at the evaluated lengths (results.json's "baselines"), or None."""
        return self.results.baselines

    @functools.cached_property
    def examples(self) -> dict | None:
        """Per-example scores of the run folder's examples.npz (`pe_jax.runfiles.read_examples`),
        or None for a run without one (written before the file existed)."""
        return read_examples(self.path.parent)

    @property
    def lengths(self) -> np.ndarray:
        """int [n] evaluated input lengths."""
        return np.asarray(self.results.lengths, dtype=np.int64)

    @property
    def train_max_length(self) -> int:
        return int(self.results.train_max_length)

    @property
    def num_params(self) -> int:
        return int(self.results.num_params)

    @property
    def time_per_step_s(self) -> float:
        """Steady-state seconds per training step (one step trains every seed)."""
        return float(self.results.time_per_step_s)

    def metric(self, name: str) -> np.ndarray:
        """float64 [M, n]: metric `name` per model (seed, or seed x learning rate) and length."""
        return np.asarray(self.results.metrics[name], dtype=np.float64)

    def summary(self, name: str, split: str) -> np.ndarray:
        """float64 [M]: the run's own mean of `name` over the in- or out-of-distribution lengths.

        Args:
          split: "in_distribution" (T <= train_max_length) or "out_of_distribution".
        """
        return np.asarray(self.results.summary[name][split], dtype=np.float64)


def default_metric(protocol: str) -> str:
    """The metric each published protocol reports: per-token accuracy for the encoder protocol
    (Deletang et al. 2023), exact match of the whole answer for the decoder protocol
    (Kazemnejad et al. 2023)."""
    return "exact_match" if protocol == "decoder" else "token_accuracy"


def _labels(rel_parts: tuple[str, ...], results: Results) -> tuple[str, str]:
    if len(rel_parts) >= 2:  # <workdir>/<task>/<encoding>/results.json, as a sweep lays out
        return rel_parts[0], "/".join(rel_parts[1:])
    if len(rel_parts) == 1:
        return results.task, rel_parts[0]
    return results.task, results.encoding


def load_runs(workdir: str | os.PathLike) -> list[Run]:
    """Every finished run under `workdir`, in the sweep's order when a manifest is present.

    A run is a folder holding results.json; its labels come from where it lies:
    <workdir>/<task>/<encoding>/results.json. Unfinished runs (no results.json) are absent, and
    so are runs whose results.json is damaged, each with a warning naming the file.

    Args:
      workdir: a sweep folder, or any folder holding runs at any depth.

    Returns:
      Runs ordered by the manifest's task then encoding order (others after, by path). A
      folder without any results.json but with a report's results.csv (a committed report
      whose run folders are gone) is read from the CSV (`load_runs_csv`).

    Raises:
      ValueError: `workdir` does not exist, or its sweep manifest is damaged (naming it).
    """
    root = Path(workdir)
    if not root.is_dir():
        raise ValueError(f"workdir {str(root)!r} is not a folder.")
    runs = []
    paths = sorted(root.rglob(RESULTS))
    if not paths and (root / RESULTS_CSV).is_file():
        return load_runs_csv(root / RESULTS_CSV)
    for path in paths:
        try:
            results = read_results(path)
        except DamagedFileError as error:  # one damaged run does not hide the others
            warnings.warn(f"run left out of the report: {error}", stacklevel=2)
            continue
        task, encoding = _labels(path.parent.relative_to(root).parts, results)
        runs.append(Run(task=task, encoding=encoding, path=path, results=results))
    manifest = read_manifest(root)
    if manifest:
        task_rank = {t: i for i, t in enumerate(manifest.get("tasks", []))}
        enc_rank = {e: i for i, e in enumerate(manifest.get("encodings", []))}
        far = len(task_rank) + len(enc_rank)
        runs.sort(key=lambda r: (task_rank.get(r.task, far), enc_rank.get(r.encoding, far)))
    return runs


def missing_runs(workdir: str | os.PathLike, runs: list[Run]) -> list[str]:
    """Names ("task/encoding") of the runs the manifest plans that have no results.json yet."""
    manifest = read_manifest(workdir) or {}
    done = {f"{r.task}/{r.encoding}" for r in runs}
    return [name for name in manifest.get("runs", []) if name not in done]


def nearest_length(lengths: np.ndarray, target: float) -> int:
    """The evaluated length closest to `target` (the shorter one on a tie)."""
    lengths = np.asarray(lengths)
    return int(lengths[np.argmin(np.abs(lengths - target))])


def tidy_rows(runs: list[Run]) -> list[dict]:
    """One row per (task, encoding, model, length), every metric a column.

    Returns:
      dicts with keys task, encoding, encoding_name, protocol, seed, learning_rate, length,
      train_max_length, split ("in" for T <= train_max_length, else "out"), exact_match,
      token_accuracy, loss, num_params, time_per_step_s, steps (the run's budget or cap),
      cpu_seconds_per_step ("" when not recorded),
      steps_trained (this model's optimizer steps; "" when not recorded), until (the
      train-to-criterion bar; "" for a fixed budget), eval_samples (examples per length).
    """
    rows = []
    for run in runs:
        values = {name: run.metric(name) for name in METRICS if name in run.results.metrics}
        trained = run.results.steps_trained or [""] * len(run.models)
        until = run.results.until
        samples = (run.results.config.get("eval") or {}).get("samples", "")
        for m, model in enumerate(run.models):
            for i, length in enumerate(run.lengths.tolist()):
                row = {
                    "task": run.task,
                    "encoding": run.encoding,
                    "encoding_name": run.encoding_name,
                    "protocol": run.protocol,
                    "seed": model["seed"],
                    "learning_rate": model["learning_rate"],
                    "length": length,
                    "train_max_length": run.train_max_length,
                    "split": "in" if length <= run.train_max_length else "out",
                }
                row.update({name: float(v[m, i]) for name, v in values.items()})
                row.update(
                    num_params=run.num_params,
                    time_per_step_s=run.time_per_step_s,
                    steps=int(run.results.steps),
                    cpu_seconds_per_step=_blank(run.results.cpu_seconds_per_step),
                    steps_trained=trained[m],
                    until="" if until is None else until,
                    eval_samples=samples,
                )
                rows.append(row)
    return rows


RESULTS_CSV = "results.csv"


def _merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merged(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def _run_config(manifest: dict, task: str, encoding: str) -> dict:
    """A run's config rebuilt from the sweep manifest: the task's config, the sweep's
    overrides, then the encoding's name and options."""
    sweep = manifest.get("sweep_config") or {}
    config = next((t["config"] for t in sweep.get("tasks", []) if t.get("label") == task), {})
    config = _merged(config, sweep.get("overrides") or {})
    entry = next((e for e in sweep.get("encodings", []) if e.get("label") == encoding), None)
    if entry:
        model = {**config.get("model", {}), "encoding": entry["name"]}
        config = {**config, "model": {**model, "encoding_options": entry.get("options") or {}}}
    return config


def _blank(value):
    return "" if value is None else value


def _float_or_none(text: str):
    return None if text in ("", "None") else float(text)


def load_runs_csv(path: str | os.PathLike) -> list[Run]:
    """The runs of a report's results.csv (`write_csv`), for re-reporting without run folders.

    Everything the rules read is in the CSV: per-model, per-length exact match and per-token
    accuracy, the baselines, parameters, step time and steps. The run config comes from the
    sweep manifest beside it (sweep.json); the CSV's own columns, where present, take
    precedence for `until`, `eval_samples`, `steps_trained`, `cpu_seconds_per_step` and
    `steps_to_gate` (as the report that wrote the CSV judged it). Run.path points where the
    run's results.json was, so per-example scores and gate records are absent.

    Raises:
      DamagedFileError: the CSV lacks a column the rules need, or a value does not parse.
    """
    path = Path(path)
    manifest = read_manifest(path.parent) or {}
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        groups: dict[tuple[str, str], list[dict]] = {}
        baselines: dict[str, dict] = {}
        for row in rows:
            if row["kind"] == "baseline":
                rule = row["encoding"].removeprefix("baseline:")
                b = baselines.setdefault(row["task"], {}).setdefault(rule, {})
                b[int(row["length"])] = (float(row["exact_match"]), float(row["token_accuracy"]))
            else:
                groups.setdefault((row["task"], row["encoding"]), []).append(row)
        runs = [
            _csv_run(path, manifest, key, group, baselines.get(key[0]))
            for key, group in groups.items()
        ]
    except (KeyError, ValueError) as error:
        raise DamagedFileError(f"{path} is not a report's results.csv: {error!r}.") from error
    task_rank = {t: i for i, t in enumerate(manifest.get("tasks", []))}
    enc_rank = {e: i for i, e in enumerate(manifest.get("encodings", []))}
    far = len(task_rank) + len(enc_rank)
    return sorted(runs, key=lambda r: (task_rank.get(r.task, far), enc_rank.get(r.encoding, far)))


def _csv_run(path: Path, manifest: dict, key, rows: list[dict], baselines: dict | None) -> Run:
    task, encoding = key
    first = rows[0]
    models = list(dict.fromkeys((int(r["seed"]), _float_or_none(r["learning_rate"])) for r in rows))
    lengths = sorted({int(r["length"]) for r in rows})
    index = {m: i for i, m in enumerate(models)}
    where = {t: i for i, t in enumerate(lengths)}
    metrics = {m: np.full((len(models), len(lengths)), np.nan) for m in METRICS}
    trained = [None] * len(models)
    gate_steps = [None] * len(models)
    for r in rows:
        m = index[(int(r["seed"]), _float_or_none(r["learning_rate"]))]
        for name in METRICS:
            if r.get(name, "") != "":
                metrics[name][m, where[int(r["length"])]] = float(r[name])
        if r.get("steps_trained", "") != "":
            trained[m] = int(r["steps_trained"])
        if r.get("steps_to_gate", "") != "":
            gate_steps[m] = (
                float("nan") if r["steps_to_gate"] == "never" else float(r["steps_to_gate"])
            )
    config = _run_config(manifest, task, encoding)
    train = dict(config.get("train") or {})
    if "until" in first:
        train["until"] = _float_or_none(first["until"])
    evaluation = dict(config.get("eval") or {})
    if first.get("eval_samples", "") != "":
        evaluation["samples"] = int(first["eval_samples"])
    config = {**config, "train": train, "eval": evaluation}
    train_max = int(first["train_max_length"])
    inside = np.asarray(lengths) <= train_max

    def split(values):
        return {
            "in_distribution": values[:, inside].mean(1).tolist() if inside.any() else [],
            "out_of_distribution": values[:, ~inside].mean(1).tolist() if (~inside).any() else [],
        }

    base = None
    if baselines:
        blengths = sorted(next(iter(baselines.values())))
        base = {"lengths": blengths}
        for rule, values in baselines.items():
            base[rule] = {
                "exact_match": [values[t][0] for t in blengths],
                "token_accuracy": [values[t][1] for t in blengths],
            }
    results = Results(
        config=config,
        task=task,
        protocol=first["protocol"],
        encoding=first["encoding_name"],
        seeds=list(dict.fromkeys(s for s, _ in models)),
        train_max_length=train_max,
        lengths=lengths,
        metrics={name: v.tolist() for name, v in metrics.items() if not np.isnan(v).all()},
        summary={name: split(v) for name, v in metrics.items() if not np.isnan(v).all()},
        num_params=int(first["num_params"]),
        steps=int(first["steps"]),
        time_per_step_s=float(first["time_per_step_s"]),
        cpu_seconds_per_step=_float_or_none(first.get("cpu_seconds_per_step", "")),
        baselines=base,
        models=[{"seed": s, "learning_rate": lr} for s, lr in models],
        steps_trained=trained if all(t is not None for t in trained) else None,
        until=train.get("until"),
    )
    run_path = path.parent / task / encoding / RESULTS
    recorded = tuple(gate_steps) if all(g is not None for g in gate_steps) else None
    return Run(task=task, encoding=encoding, path=run_path, results=results, steps_to_gate=recorded)
