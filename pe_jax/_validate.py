"""The one validator of the project: argument checks that raise ValueError naming the argument.

A low module (imports only numpy and jax.numpy) so every package can use it."""

from __future__ import annotations

from collections.abc import Iterable

import jax.numpy as jnp
import numpy as np


def check_int_positions(name: str, positions, *, min_ndim: int = 1, max_ndim: int = 2):
    """Returns `positions` as an int32 array, or raises ValueError.

    Args:
      name: the argument's name, used in the error message.
      positions: an integer array-like of rank in [min_ndim, max_ndim].
      min_ndim, max_ndim: allowed ranks.

    Raises:
      ValueError: when `positions` is not an integer array or has a rank outside the range.
    """
    dtype = getattr(positions, "dtype", None)
    if dtype is None:
        positions = np.asarray(positions)
        dtype = positions.dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"{name} must be an integer array, got dtype {dtype}.")
    ndim = jnp.ndim(positions)
    if not min_ndim <= ndim <= max_ndim:
        raise ValueError(
            f"{name} must have rank in [{min_ndim}, {max_ndim}], got shape {jnp.shape(positions)}."
        )
    return jnp.asarray(positions, jnp.int32)


def check_positive_int(name: str, value) -> int:
    """Returns `value` if it is an int >= 1, else raises ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def check_positive(name: str, value) -> float:
    """Returns `value` as a float if it is a number > 0, else raises ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}.") from None
    if not number > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return number


def check_choice(name: str, value, allowed: Iterable):
    """Returns `value` if it is one of `allowed`, else raises ValueError listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
    return value


def check_rank(name: str, x, *, min_ndim: int, max_ndim: int | None = None):
    """Raises ValueError if `x` does not have a rank in [min_ndim, max_ndim]."""
    ndim = jnp.ndim(x)
    if ndim < min_ndim or (max_ndim is not None and ndim > max_ndim):
        allowed = f">= {min_ndim}" if max_ndim is None else f"in [{min_ndim}, {max_ndim}]"
        raise ValueError(f"{name} must have rank {allowed}, got shape {jnp.shape(x)}.")
