"""Several processes (hosts): start-up of `jax.distributed`, who writes, host-side fetches.

The JAX runtime is the distributed engine: every process runs the same program on the same
config, `jax.devices()` lists the devices of all processes, and one global mesh spans them.
pe_jax adds only three things on top: deciding when to call `jax.distributed.initialize`,
letting process 0 alone write files and logs, and fetching arrays that span several processes.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

MODES = ("auto", "on", "off")
MODE_ENV = "PE_JAX_DISTRIBUTED"

# Launchers whose environment says "this process is one of several" (JAX reads the details
# itself: coordinator, process count and id). A variable holding a count must exceed 1 so that
# a single-process job inside such a launcher stays single-process. For Slurm that is the
# step's task count, set by srun (a plain `python` inside salloc sees SLURM_NTASKS too).
_COUNT_VARS = ("JAX_NUM_PROCESSES", "SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE")
_HOST_LIST_VARS = ("TPU_WORKER_HOSTNAMES", "TPU_PROCESS_ADDRESSES")


def _multi_process_environment() -> bool:
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    for name in _COUNT_VARS:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 1:
            return True
    return any("," in os.environ.get(name, "") for name in _HOST_LIST_VARS)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise ValueError(f"environment variable {name} must be a non-negative int, got {value!r}.")
    return int(value)


def initialize_distributed(mode: str | None = None) -> bool:
    """Calls `jax.distributed.initialize()` when this process is one of several; else nothing.

    Call it first thing in an entry point, before any JAX computation (`jax.devices()`
    included): JAX refuses to start the distributed runtime afterwards.

    "auto" starts it when the environment describes a multi-process job:
    JAX_COORDINATOR_ADDRESS (with JAX_NUM_PROCESSES and JAX_PROCESS_ID, which pe_jax passes on
    because JAX does not read them), or a launcher JAX detects by itself (srun with
    more than one task, Open MPI with OMPI_COMM_WORLD_SIZE > 1, a multi-host TPU slice on GKE).
    "on" always starts it (e.g. Cloud TPU VM pod slices, whose worker list JAX reads from the
    metadata server; set PE_JAX_DISTRIBUTED=on there). "off" never does.

    Args:
      mode: "auto", "on" or "off"; None reads the environment variable PE_JAX_DISTRIBUTED
        (default "auto").

    Returns:
      True when the distributed runtime is running (started now or earlier).

    Raises:
      ValueError: an unknown mode, or non-integer JAX_NUM_PROCESSES / JAX_PROCESS_ID.
      RuntimeError: from JAX, when a JAX computation already ran in this process.
    """
    if mode is None:
        mode = os.environ.get(MODE_ENV, "auto")
    if mode not in MODES:
        raise ValueError(f"mode (or ${MODE_ENV}) must be one of {MODES}, got {mode!r}.")
    if jax.distributed.is_initialized():
        return True
    if mode == "off" or (mode == "auto" and not _multi_process_environment()):
        return False
    jax.distributed.initialize(
        num_processes=_env_int("JAX_NUM_PROCESSES"), process_id=_env_int("JAX_PROCESS_ID")
    )
    return True


def is_primary() -> bool:
    """Whether this is process 0, the one that writes config.json, logs and results."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier `name` (no-op with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def fetch(tree: Any) -> Any:
    """NumPy copies of a pytree of arrays, on every process, also for arrays spread over hosts.

    An array whose shards all live in this process (every array of a single-process run) is
    copied directly; one that spans processes is all-gathered, a collective that every process
    must call in the same order, which holds because all run the same program on the same
    shardings.
    """

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(one, tree)
