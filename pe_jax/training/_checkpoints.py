"""Checkpoints that are good by construction, and a damaged latest one that falls back.

A checkpoint is written only when every floating-point leaf of the state is finite (the loss
and gradient norm of the step that produced it are checked before, by the runner), so a run
stopped by a NaN keeps only finite checkpoints. Restoring tries the latest step and, when it
cannot be read, the older ones in turn, with a warning naming both steps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from pe_jax._compile import jit_few_runs
from pe_jax.runfiles import damaged


class NonFiniteError(FloatingPointError):
    """The loss or the gradient norm became NaN or Inf; the last good checkpoint is kept."""


@jit_few_runs
def _all_finite(tree) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves] + [jnp.bool_(True)]))


def all_finite(tree) -> bool:
    """Whether every floating-point leaf of `tree` is finite (on every process alike)."""
    # One scalar, replicated: every process holds it whole, even for a state split over hosts.
    return bool(np.asarray(_all_finite(tree).addressable_data(0)))


def save_checkpoint(manager: ocp.CheckpointManager, step: int, state: dict) -> None:
    """Saves `state` as checkpoint `step` if it is finite.

    Raises:
      NonFiniteError: some parameter or optimizer value is NaN or Inf; nothing is written, so
        the checkpoints kept are the earlier, finite ones.
    """
    if not all_finite(state):
        kept = manager.latest_step()
        raise NonFiniteError(
            f"non-finite parameters or optimizer state after step {step}; not checkpointed, "
            f"the last good checkpoint (step {kept}) is kept."
        )
    manager.save(step, args=ocp.args.StandardSave(state))


def restore_latest(
    manager: ocp.CheckpointManager,
    abstract_state: dict,
    *,
    warn: Callable[[str], None],
    delete_damaged: bool,
) -> tuple[dict | None, int | None]:
    """The newest checkpoint that can be restored, and its step; (None, None) if there is none.

    A checkpoint that fails to restore (truncated, emptied or garbled files) is skipped for the
    next older one, with `warn` naming both steps. With `delete_damaged` (a run about to train
    from the older step, which will write that step again) the damaged one is deleted.

    Raises:
      DamagedFileError: checkpoints exist but none can be restored (naming the folder).
    """
    steps = sorted(manager.all_steps(), reverse=True)
    failed = []
    for step in steps:
        try:
            state = manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
        except Exception as error:  # noqa: BLE001 - any failure to read means unusable
            failed.append((step, error))
            continue
        for bad, error in failed:
            warn(
                f"checkpoint {bad} is damaged ({type(error).__name__}: {str(error)[:200]}); "
                f"falling back to the checkpoint of step {step}"
                + ("; the damaged one is deleted." if delete_damaged else ".")
            )
            if delete_damaged:
                manager.delete(bad)
        return state, step
    if failed:
        raise damaged(
            Path(str(manager.directory)),
            f"no checkpoint of steps {steps} can be restored; the latest failed with "
            f"{type(failed[0][1]).__name__}: {str(failed[0][1])[:200]}",
            "delete the folder, or rerun with --overwrite to start afresh",
        )
    return None, None
