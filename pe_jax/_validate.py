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


def check_int(name: str, value, *, minimum: int = 1) -> int:
    """Returns `value` as an int if it is an integer (not a bool) >= `minimum`, else raises."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_positive_int(name: str, value) -> int:
    """Returns `value` if it is an int >= 1, else raises ValueError naming `name`."""
    return check_int(name, value, minimum=1)


def check_even(name: str, value) -> int:
    """Returns `value` if it is an even int >= 2 (sin/cos or rotation pairs), else raises."""
    value = check_positive_int(name, value)
    if value % 2:
        raise ValueError(f"{name} must be even (sin/cos or rotation pairs), got {value}.")
    return value


def check_bool(name: str, value) -> bool:
    """Returns `value` as a bool if it is True or False (numpy bools too), else raises."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def _number(value) -> float | None:
    """`value` as a float when it is a real number (not a bool, not text), else None."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return None
    return float(value)


def check_fraction(name: str, value) -> float:
    """Returns `value` as a float if it is a number in (0, 1], else raises ValueError."""
    number = _number(value)
    if number is None or not 0.0 < number <= 1.0:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}.")
    return number


def check_rate(name: str, value) -> float:
    """Returns `value` as a float if it is a number in [0, 1) (a dropout rate), else raises."""
    number = _number(value)
    if number is None or not 0.0 <= number < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}.")
    return number


def check_positive(name: str, value) -> float:
    """Returns `value` as a float if it is a number > 0, else raises ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}.") from None
    if not number > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return number


def check_nonnegative(name: str, value) -> float:
    """Returns `value` as a float if it is a finite number >= 0 (not bool or text), else raises."""
    number = _number(value)
    if number is None or not 0.0 <= number < float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
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
