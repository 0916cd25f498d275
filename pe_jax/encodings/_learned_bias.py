"""Attention-logit biases with learned parameters: Kerple, FIRE, dynamic position bias.

Parameters are explicit arrays (flat dicts of float32 arrays from the `init_*` functions);
constraints (positivity, ranges) are applied inside the bias functions, so unconstrained
optimiser updates are fine. Shapes follow `_alibi_t5.py`: positions int [L] or [B, L] and
[S] or [B, S] give a float32 bias [1, H, L, S] or [B, H, L, S].
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from pe_jax._validate import check_choice, check_positive, check_positive_int
from pe_jax.encodings._alibi_t5 import head_vector, pair_positions

_KERPLE_EPS = 1e-2  # lower bound of every Kerple parameter in the reference code
_FIRE_EPS = 1e-6  # added to FIRE's normaliser psi(max(L, i)) as in the reference code


def _clamp_straight_through(x: jax.Array, lo: float, hi: float | None = None) -> jax.Array:
    # Forward value clip(x, lo, hi), gradient the identity: like the reference's in-place
    # projection (param.data.clamp_), the gradient is taken at the clamped value, and a parameter
    # past the bound is not frozen by a zero gradient. x - stop_gradient(x) is exactly 0, so the
    # forward value is exactly the clipped one.
    return x - jax.lax.stop_gradient(x) + jax.lax.stop_gradient(jnp.clip(x, lo, hi))


def _kerple_params(r1, r2, *, r2_max: float | None = None) -> tuple[jax.Array, jax.Array]:
    """Kerple's r1, r2 [H] checked and clamped to [0.01, r2_max] as the official code does,
    as [H, 1, 1] to broadcast over [L, S] distances."""
    r1 = head_vector("r1", r1)
    r2 = head_vector("r2", r2, r1.shape[0])
    r1 = _clamp_straight_through(r1, _KERPLE_EPS)[:, None, None]
    r2 = _clamp_straight_through(r2, _KERPLE_EPS, r2_max)[:, None, None]
    return r1, r2


def init_kerple_params(key: jax.Array, num_heads: int, *, kind: str) -> dict[str, jax.Array]:
    """Initial Kerple parameters, as in the official code (Chi et al. 2022, NeurIPS).

    Both are per head and drawn uniformly (torch.rand * scale in the authors' gpt-neox fork):
    - kind="log" (-r1 * log(1 + r2 |i - j|)): r1 ~ U[0, 2), r2 ~ U[0, 1).
    - kind="power" (-r1 * |i - j|^r2): r1 ~ U[0, 1), r2 ~ U[0, 2).

    Args:
      key: PRNG key.
      num_heads: H >= 1.
      kind: "log" or "power".

    Returns:
      {"r1": float32 [H], "r2": float32 [H]}, unconstrained (see `kerple_log_bias`).

    Raises:
      ValueError: for an invalid `num_heads` or `kind`.
    """
    num_heads = check_positive_int("num_heads", num_heads)
    kind = check_choice("kind", kind, ("log", "power"))
    scale1, scale2 = (2.0, 1.0) if kind == "log" else (1.0, 2.0)
    draw = jax.random.uniform(key, (2, num_heads), jnp.float32)
    return {"r1": scale1 * draw[0], "r2": scale2 * draw[1]}


def _distance(q_positions, k_positions) -> jax.Array:
    q, k = pair_positions(q_positions, k_positions)
    return jnp.abs(q - k).astype(jnp.float32)[:, None]  # [b, 1, L, S]


def kerple_log_bias(q_positions, k_positions, *, r1, r2) -> jax.Array:
    """Kerple logarithmic bias (Chi et al. 2022): b_h(i, j) = -r1_h * log(1 + r2_h |i - j|).

    Constraint (as in the official code): r1, r2 are clamped to >= 0.01 in the forward pass,
    with a straight-through gradient (see `_clamp_straight_through`). The bias is symmetric;
    a causal model masks j > i.

    Args:
      q_positions: int [L] or [B, L].
      k_positions: int [S] or [B, S].
      r1: float [H], scale (paper's r1 > 0).
      r2: float [H], distance scale (paper's r2 > 0).

    Returns:
      float32 [1, H, L, S] (both positions 1-D) or [B, H, L, S].

    Raises:
      ValueError: for non-integer positions or `r1` / `r2` not rank 1 of equal length.
    """
    r1, r2 = _kerple_params(r1, r2)
    return -r1 * jnp.log1p(r2 * _distance(q_positions, k_positions))


def kerple_power_bias(q_positions, k_positions, *, r1, r2) -> jax.Array:
    """Kerple power bias (Chi et al. 2022): b_h(i, j) = -r1_h * |i - j|^r2_h.

    Constraint (as in the official code): r1 >= 0.01 and 0.01 <= r2 <= 2 (the paper's
    r1 > 0, 0 < r2 <= 2), clamped in the forward pass with a straight-through gradient. The
    bias is symmetric; a causal model masks j > i. r2 = 1 gives ALiBi with slope r1.

    Args:
      q_positions: int [L] or [B, L].
      k_positions: int [S] or [B, S].
      r1: float [H], scale.
      r2: float [H], exponent.

    Returns:
      float32 [1, H, L, S] (both positions 1-D) or [B, H, L, S].

    Raises:
      ValueError: for non-integer positions or `r1` / `r2` not rank 1 of equal length.
    """
    r1, r2 = _kerple_params(r1, r2, r2_max=2.0)
    distance = _distance(q_positions, k_positions)
    # 0^r2 = 0; the inner `where` keeps log(0) (and a NaN gradient w.r.t. r2) out of the graph.
    positive = distance > 0
    log_distance = jnp.log(jnp.where(positive, distance, 1.0))
    return -r1 * jnp.where(positive, jnp.exp(r2 * log_distance), 0.0)


@functools.partial(jax.jit, static_argnums=1)
def _init_mlp(key: jax.Array, sizes: tuple[int, ...]) -> dict[str, jax.Array]:
    # PyTorch nn.Linear's default init, as in the reference FIRE / DPB code: weights and biases
    # ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Keys w0, b0, w1, b1, ...; w_i is [fan_in, fan_out].
    # One jitted uniform draw, sliced per array: an eager init then compiles a single program.
    layers = list(zip(sizes[:-1], sizes[1:], strict=True))
    draw = jax.random.uniform(
        key, (sum((fan_in + 1) * fan_out for fan_in, fan_out in layers),), jnp.float32, -1.0, 1.0
    )
    params, start = {}, 0
    for i, (fan_in, fan_out) in enumerate(layers):
        for name, shape in ((f"w{i}", (fan_in, fan_out)), (f"b{i}", (fan_out,))):
            size = math.prod(shape)
            params[name] = fan_in**-0.5 * draw[start : start + size].reshape(shape)
            start += size
    return params


def _check_mlp_params(params: Mapping[str, jax.Array]) -> int:
    """Returns the number of layers of an MLP parameter dict, or raises ValueError."""
    num_layers = sum(1 for name in params if name.startswith("w") and name[1:].isdigit())
    for i in range(num_layers):
        for name in (f"w{i}", f"b{i}"):
            if name not in params:
                raise ValueError(f"params must hold {name!r} (w0, b0, ..., w{num_layers - 1}).")
    if num_layers < 1 or jnp.shape(params["w0"])[0] != 1:
        raise ValueError("params['w0'] must have shape (1, hidden): the input is a scalar.")
    return num_layers


def _apply_mlp(
    x: jax.Array, params: Mapping[str, jax.Array], activation: Callable[[jax.Array], jax.Array]
) -> jax.Array:
    """Scalar input [b, L, S] -> [b, H, L, S] through layers w0/b0, w1/b1, ... (last linear)."""
    num_layers = _check_mlp_params(params)
    h = x[..., None]
    for i in range(num_layers):
        w = jnp.asarray(params[f"w{i}"], jnp.float32)
        b = jnp.asarray(params[f"b{i}"], jnp.float32)
        h = h @ w + b
        if i < num_layers - 1:
            h = activation(h)
    return jnp.moveaxis(h, -1, 1)


def init_fire_params(
    key: jax.Array,
    num_heads: int,
    *,
    hidden: int = 32,
    c: float = 0.1,
    threshold: float = 512.0,
) -> dict[str, jax.Array]:
    """Initial FIRE parameters (Li et al. 2023, "Functional Interpolation for Relative ...").

    Defaults follow the paper's reference code: an MLP 1 -> 32 -> H with ReLU, c = 0.1 and
    threshold L = 512.

    Args:
      key: PRNG key.
      num_heads: H >= 1.
      hidden: MLP width >= 1.
      c: initial log-transform scale (> 0).
      threshold: initial L (> 0).

    Returns:
      {"w0": [1, hidden], "b0": [hidden], "w1": [hidden, H], "b1": [H], "c": [],
      "threshold": []}, all float32.

    Raises:
      ValueError: for invalid `num_heads`, `hidden`, `c` or `threshold`.
    """
    num_heads = check_positive_int("num_heads", num_heads)
    hidden = check_positive_int("hidden", hidden)
    c = check_positive("c", c)
    threshold = check_positive("threshold", threshold)
    params = _init_mlp(key, (1, hidden, num_heads))
    params["c"] = jnp.asarray(c, jnp.float32)
    params["threshold"] = jnp.asarray(threshold, jnp.float32)
    return params


def fire_bias(q_positions, k_positions, *, params: Mapping[str, jax.Array]) -> jax.Array:
    """FIRE bias (Li et al. 2023): b(i, j) = f_theta(psi(i - j) / psi(max(L, i))).

    psi(x) = log(c x + 1); f_theta is the MLP of `params` (ReLU), giving one value per head.
    c and L are used as |c| and |L| (the reference code's abs), so learned values stay
    valid, and 1e-6 is added to the normaliser. The query's own position i (not the key's)
    normalises, so FIRE is not translation invariant; for i <= L it depends only on i - j.
    Keys after the query (j > i, masked by a causal model) use |i - j|, as the reference code
    does (it takes |c (i - j)|).

    The reference code learns L as a multiplier of a fixed 512; here L itself is the parameter
    (same function, a different gradient scale).

    Args:
      q_positions: int [L] or [B, L].
      k_positions: int [S] or [B, S].
      params: as returned by `init_fire_params`.

    Returns:
      float32 [1, H, L, S] (both positions 1-D) or [B, H, L, S].

    Raises:
      ValueError: for non-integer positions or `params` lacking a key.
    """
    for name in ("c", "threshold"):
        if name not in params:
            raise ValueError(f"params must hold {name!r} (see init_fire_params).")
    _check_mlp_params(params)
    q, k = pair_positions(q_positions, k_positions)
    c = jnp.abs(jnp.asarray(params["c"], jnp.float32))
    threshold = jnp.abs(jnp.asarray(params["threshold"], jnp.float32))
    distance = jnp.abs(q - k).astype(jnp.float32)
    normaliser = jnp.abs(jnp.maximum(q.astype(jnp.float32), threshold))
    ratio = jnp.log1p(c * distance) / (jnp.log1p(c * normaliser) + _FIRE_EPS)
    return _apply_mlp(ratio, params, jax.nn.relu)


def init_dynamic_bias_params(
    key: jax.Array, num_heads: int, *, hidden: int = 32, depth: int = 2
) -> dict[str, jax.Array]:
    """Initial dynamic-position-bias MLP (Wang et al. 2021, CrossFormer; x-transformers DPB).

    Layers: Linear(1, hidden), then depth - 1 times Linear(hidden, hidden), each followed by
    SiLU, then Linear(hidden, H).

    Args:
      key: PRNG key.
      num_heads: H >= 1.
      hidden: MLP width >= 1.
      depth: number of hidden layers >= 1.

    Returns:
      {"w0": [1, hidden], "b0": [hidden], ..., f"w{depth}": [hidden, H], f"b{depth}": [H]}.

    Raises:
      ValueError: for invalid `num_heads`, `hidden` or `depth`.
    """
    num_heads = check_positive_int("num_heads", num_heads)
    hidden = check_positive_int("hidden", hidden)
    depth = check_positive_int("depth", depth)
    return _init_mlp(key, (1,) + (hidden,) * depth + (num_heads,))


def dynamic_position_bias(
    q_positions, k_positions, *, params: Mapping[str, jax.Array], log_distance: bool = True
) -> jax.Array:
    """Dynamic position bias: b(i, j) = MLP(g(i - j)), one output per head.

    g(d) = sign(d) * log(1 + |d|) when `log_distance` (x-transformers' option, which keeps
    the input scale moderate for long sequences), else d; d = i - j is signed, so the bias
    may differ for keys before and after the query. SiLU activations.

    Args:
      q_positions: int [L] or [B, L].
      k_positions: int [S] or [B, S].
      params: as returned by `init_dynamic_bias_params`.
      log_distance: feed sign(d) log(1 + |d|) instead of d.

    Returns:
      float32 [1, H, L, S] (both positions 1-D) or [B, H, L, S].

    Raises:
      ValueError: for non-integer positions or malformed `params`.
    """
    _check_mlp_params(params)
    q, k = pair_positions(q_positions, k_positions)
    d = (q - k).astype(jnp.float32)
    if log_distance:
        d = jnp.sign(d) * jnp.log1p(jnp.abs(d))
    return _apply_mlp(d, params, jax.nn.silu)
