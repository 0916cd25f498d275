"""The device mesh: ("seeds", "data") axes; one device is a mesh of shape (1, 1)."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ("seeds", "data")


def make_mesh(mesh_shape: tuple[int, int] | None = None) -> Mesh:
    """A mesh with axes ("seeds", "data") over all local and remote devices.

    Args:
      mesh_shape: (seeds, data) sizes whose product is the device count; default (1, all).

    Raises:
      ValueError: a shape that is not two positive ints multiplying to the device count.
    """
    n = jax.device_count()
    shape = (1, n) if mesh_shape is None else tuple(int(s) for s in mesh_shape)
    if len(shape) != 2 or min(shape) < 1 or shape[0] * shape[1] != n:
        raise ValueError(
            f"mesh_shape must be (seeds, data) with seeds * data == device count {n}, got "
            f"{mesh_shape!r}."
        )
    devices = np.asarray(jax.devices()).reshape(shape)
    return Mesh(devices, AXES)


def check_divisible(mesh: Mesh, *, batch_size: int, num_seeds: int) -> None:
    """Fails before training when the batch or the seeds cannot be split over the mesh.

    Raises:
      ValueError: naming train.batch_size or the seeds count and the mesh axis size.
    """
    data, seeds = mesh.shape["data"], mesh.shape["seeds"]
    if batch_size % data:
        raise ValueError(
            f"train.batch_size={batch_size} must be divisible by the mesh's data axis ({data} "
            "devices)."
        )
    if num_seeds % seeds:
        raise ValueError(
            f"the number of seeds ({num_seeds}) must be divisible by the mesh's seeds axis "
            f"({seeds} devices)."
        )


def seed_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (seed) axis split over "seeds", everything else replicated."""
    return NamedSharding(mesh, P("seeds"))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Per-seed batch arrays [B, ...] split over "data" (used inside a vmap over seeds)."""
    return NamedSharding(mesh, P("data"))
