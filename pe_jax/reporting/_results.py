"""Reading finished runs: results.json files under a folder -> `Run` records and tidy rows.

Nothing here imports the model, the tasks or the trainer: a report needs only the files, so
it can be rebuilt anywhere (a laptop without the training dependencies' state, a notebook).
The files are decoded by their owner, `pe_jax.runfiles`; the sweep manifest is read only to
order the tables as the sweep listed them and to name the runs that have not finished.
"""

from __future__ import annotations

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
    """

    task: str
    encoding: str
    path: Path
    results: Results

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
      Runs ordered by the manifest's task then encoding order (others after, by path).

    Raises:
      ValueError: `workdir` does not exist, or its sweep manifest is damaged (naming it).
    """
    root = Path(workdir)
    if not root.is_dir():
        raise ValueError(f"workdir {str(root)!r} is not a folder.")
    runs = []
    for path in sorted(root.rglob(RESULTS)):
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
      token_accuracy, loss, num_params, time_per_step_s, steps.
    """
    rows = []
    for run in runs:
        values = {name: run.metric(name) for name in METRICS if name in run.results.metrics}
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
                )
                rows.append(row)
    return rows
