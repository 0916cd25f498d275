"""Loading a trained run back from its workdir: settings, graph definition and checkpoint.

The inverse of what `train_and_evaluate` writes: config.json is validated again by
`settings_from_config`, `abstract_state` gives the state's shapes without building a training
program (so Orbax restores the same {"params", "rest", "opt_state", "control"} tree with its
leading models axis), and `LoadedRun.model(i)` merges model i's parameters into a ready
`Transformer` (model i has seed and learning rate `settings.models[i]`).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import jax
import ml_collections
import orbax.checkpoint as ocp
from flax import nnx

from pe_jax.nn import Transformer
from pe_jax.runfiles import CHECKPOINTS, CONFIG, RESULTS, Results, read_json, read_results
from pe_jax.training._checkpoints import restore_latest
from pe_jax.training._mesh import make_mesh
from pe_jax.training._settings import Settings, settings_from_config
from pe_jax.training._step import abstract_state


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A run restored from its workdir.

    Attributes:
      workdir: the folder it was loaded from.
      settings: the validated settings of its config.json.
      graphdef: the Transformer's graph definition.
      state: {"params", "rest", "opt_state", "control"}, every leaf with a leading models
        axis M = S x R (`settings.models`).
      step: the checkpoint step restored.
      results: results.json, or None for an unfinished run.
    """

    workdir: Path
    settings: Settings
    graphdef: nnx.GraphDef
    state: dict
    step: int
    results: Results | None

    def model(self, seed_index: int = 0) -> Transformer:
        """The trained Transformer of model number `seed_index` (0 <= i < M; the seed
        number when the run has one learning rate).

        Raises:
          ValueError: seed_index out of range.
        """
        count = len(self.settings.models)
        if isinstance(seed_index, bool) or not isinstance(seed_index, int):
            raise ValueError(f"seed_index must be an int in [0, {count}), got {seed_index!r}.")
        if not 0 <= seed_index < count:
            raise ValueError(f"seed_index must be in [0, {count}), got {seed_index}.")
        params, rest = (
            jax.tree.map(lambda x: x[seed_index], self.state[part]) for part in ("params", "rest")
        )
        return nnx.merge(self.graphdef, params, rest)


def load_run(workdir: str | os.PathLike, *, step: int | None = None) -> LoadedRun:
    """Restores the run `train_and_evaluate` wrote to `workdir` (latest checkpoint by default).

    The config's mesh_shape is ignored: the state is restored on this host's devices (mesh
    (1, all devices)), so a run trained on several accelerators loads on one CPU. A latest
    checkpoint that cannot be read falls back to the next older one with a warning naming both
    steps (nothing is deleted).

    Args:
      workdir: a run folder holding config.json and checkpoints/.
      step: a checkpoint step to restore; None = the latest.

    Returns:
      The `LoadedRun`.

    Raises:
      ValueError: no config.json, no checkpoint (or not `step`), or an invalid config.
      DamagedFileError: (a ValueError) a damaged config.json or results.json, or no checkpoint
        that can be restored; naming the file.
    """
    workdir = Path(workdir)
    if not (workdir / CONFIG).exists():
        raise ValueError(f"workdir {workdir} holds no {CONFIG}: not a run folder.")
    config = ml_collections.ConfigDict(read_json(workdir / CONFIG))
    config.mesh_shape = None
    settings = settings_from_config(config)
    manager = ocp.CheckpointManager((workdir / CHECKPOINTS).absolute())
    steps = sorted(manager.all_steps())
    if not steps:
        raise ValueError(f"workdir {workdir} holds no checkpoint under {CHECKPOINTS}/.")
    if step is not None and step not in steps:
        raise ValueError(f"step must be one of the checkpoints {steps} in {workdir}, got {step}.")
    mesh = make_mesh(None)
    with jax.set_mesh(mesh):
        graphdef, abstract = abstract_state(settings, mesh)
        if step is None:
            state, chosen = restore_latest(manager, abstract, warn=_warn, delete_damaged=False)
        else:
            state, chosen = manager.restore(step, args=ocp.args.StandardRestore(abstract)), step
    manager.close()
    results_path = workdir / RESULTS
    results = read_results(results_path) if results_path.exists() else None
    return LoadedRun(workdir, settings, graphdef, state, int(chosen), results)


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)
