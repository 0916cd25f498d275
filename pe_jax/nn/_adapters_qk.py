"""Query/key-place adapters: rotations (and scalings) of q and k so that q.k sees m - n.

The frequencies of the 1-D rotary adapters are fixed at construction (`rope_inv_freq`) and
kept as a tuple of floats, a static attribute: they are not parameters and never enter the
model state. RoPE-Mixed is the one adapter here that learns (its frequencies, an nnx.Param).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pe_jax._validate import (
    check_choice,
    check_fraction,
    check_int_positions,
    check_positive,
    check_positive_int,
)
from pe_jax.encodings import (
    LAYOUTS,
    apply_axial_rope,
    apply_rope,
    apply_rope_complex,
    apply_rope_mixed,
    apply_xpos,
    init_rope_mixed_freqs,
    rope_inv_freq,
)
from pe_jax.nn._base import Encoding
from pe_jax.nn._declare import register_encoding


def _static_inv_freq(rotary_dim: int, **options) -> tuple[tuple[float, ...], float]:
    """`rope_inv_freq` as static Python floats, concrete even under nnx.eval_shape / jit."""
    with jax.ensure_compile_time_eval():
        inv_freq, attention_scale = rope_inv_freq(rotary_dim, **options)
        return tuple(float(f) for f in jax.device_get(inv_freq)), float(attention_scale)


def _rotary_dim(head_dim: int, rotary_fraction: float) -> int:
    """R = rotary_fraction * head_dim, which must be a whole even number >= 2.

    The one rule for rotary_fraction (TransformerConfig checks it through the registry's
    `check_options`).
    """
    head_dim = check_positive_int("head_dim", head_dim)
    fraction = check_fraction("rotary_fraction", rotary_fraction)
    rotary = fraction * head_dim
    rotary_dim = round(rotary)
    if abs(rotary - rotary_dim) > 1e-9 or rotary_dim < 2 or rotary_dim % 2:
        raise ValueError(
            f"rotary_fraction * head_dim must be a whole even number >= 2 (the rotated dims), "
            f"got rotary_fraction={rotary_fraction!r} of head_dim={head_dim} ({rotary:g} dims)."
        )
    return rotary_dim


class _FixedFrequencies(Encoding):
    """Holds static RoPE frequencies: inv_freq as a tuple of floats, and the layout."""

    def _set_frequencies(
        self, inv_freq: tuple[float, ...], attention_scale: float, layout: str
    ) -> None:
        self.inv_freq = inv_freq
        self.attention_scale = attention_scale
        self.layout = check_choice("layout", layout, LAYOUTS)

    def _inv_freq(self) -> jax.Array:
        return jnp.asarray(self.inv_freq, jnp.float32)


@register_encoding
class RoPE(_FixedFrequencies):
    """Rotary position embedding (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary
    Position Embedding"): pair i of q and k at position m is rotated by m * theta_i.

    Options: base (theta_i = base^(-2i/R)); layout "half" (GPT-NeoX / HF) or "interleaved"
    (GPT-J / Meta); rotary_fraction (partial rotary: R = rotary_fraction * head_dim, a whole even
    number, the rest pass through); proportion (p-RoPE, Barbero et al.
    2024: keep only the highest proportion of frequencies); scaling (a Hugging Face
    `rope_scaling` dict: linear, dynamic, yarn, longrope, llama3); seq_len (the length that
    "dynamic"/"longrope" scaling assume, fixed at construction); rotate_num_heads (rotate only
    the last rotate_num_heads of the H heads, the others attend without position, as
    x-transformers' `rotate_num_heads`; None = all heads).
    """

    name = "rope"
    place = "query_key"
    takes_positions = True

    _apply = staticmethod(apply_rope)

    def __init__(
        self,
        head_dim: int,
        *,
        base: float = 10000.0,
        layout: str = "half",
        rotary_fraction: float = 1.0,
        proportion: float = 1.0,
        scaling: dict | None = None,
        seq_len: int | None = None,
        rotate_num_heads: int | None = None,
        num_heads: int | None = None,
    ):
        rotary_dim = _rotary_dim(head_dim, rotary_fraction)
        inv_freq, attention_scale = _static_inv_freq(
            rotary_dim, base=base, scaling=scaling, seq_len=seq_len, proportion=proportion
        )
        self._set_frequencies(inv_freq, attention_scale, layout)
        self.rotate_num_heads = _rotate_num_heads(rotate_num_heads, num_heads)

    def rotate(
        self, q: jax.Array, k: jax.Array, q_positions: jax.Array, k_positions: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        options = dict(
            inv_freq=self._inv_freq(), layout=self.layout, attention_scale=self.attention_scale
        )
        n = self.rotate_num_heads
        if n is None or n == q.shape[-2]:
            return self._apply(q, q_positions, **options), self._apply(k, k_positions, **options)
        if n > q.shape[-2]:
            raise ValueError(f"rotate_num_heads={n} exceeds the {q.shape[-2]} heads of q.")

        def last_heads(x, positions):
            rotated = self._apply(x[..., -n:, :], positions, **options)
            return jnp.concatenate([x[..., :-n, :], rotated], axis=-2)

        return last_heads(q, q_positions), last_heads(k, k_positions)


def _rotate_num_heads(rotate_num_heads: int | None, num_heads: int | None) -> int | None:
    """rotate_num_heads validated against num_heads (when the model gives it); None = all."""
    if rotate_num_heads is None:
        return None
    n = check_positive_int("rotate_num_heads", rotate_num_heads)
    if num_heads is not None and n > num_heads:
        raise ValueError(
            f"rotate_num_heads must be in [1, num_heads={num_heads}], got {rotate_num_heads}."
        )
    return n


@register_encoding
class RoPEComplex(RoPE):
    """RoPE computed with complex numbers, z -> z * exp(i m theta_i) (Su et al. 2021,
    "RoFormer", sec. 3.4.1): the readable formulation, same result as "rope" up to rounding.
    Same options as "rope"."""

    name = "rope_complex"
    place = "query_key"
    takes_positions = True

    _apply = staticmethod(apply_rope_complex)


@register_encoding
class XPos(_FixedFrequencies):
    """xPos (Sun et al. 2022, "A Length-Extrapolatable Transformer"): RoPE whose query pair i
    is scaled by zeta_i^(m / scale_base) and key pair by zeta_i^(-n / scale_base), so scores
    decay with m - n, zeta_i = (2i/R + gamma) / (1 + gamma).

    Options: base, layout, rotary_fraction (as "rope"), scale_base, gamma. The scales leave
    the float32 range beyond |position| ~ 36,000 with the defaults.
    """

    name = "xpos"
    place = "query_key"
    takes_positions = True

    def __init__(
        self,
        head_dim: int,
        *,
        base: float = 10000.0,
        layout: str = "half",
        rotary_fraction: float = 1.0,
        scale_base: float = 512.0,
        gamma: float = 0.4,
    ):
        rotary_dim = _rotary_dim(head_dim, rotary_fraction)
        inv_freq, _ = _static_inv_freq(rotary_dim, base=base)
        self._set_frequencies(inv_freq, 1.0, layout)
        self.scale_base = check_positive("scale_base", scale_base)
        self.gamma = check_positive("gamma", gamma)

    def rotate(
        self, q: jax.Array, k: jax.Array, q_positions: jax.Array, k_positions: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        return apply_xpos(
            q,
            k,
            q_positions,
            k_positions,
            inv_freq=self._inv_freq(),
            scale_base=self.scale_base,
            gamma=self.gamma,
            layout=self.layout,
        )


def grid_coordinates(positions: jax.Array, *, ndim: int, grid_width: int) -> jax.Array:
    """Maps flat positions to row-major grid coordinates, int32 [..., L, ndim].

    p -> its ndim digits in base grid_width, most significant first; the first coordinate is
    unbounded. For ndim = 2: p -> (p // grid_width, p % grid_width), i.e. a sequence laid out
    as rows of grid_width tokens (an image of width grid_width, flattened). Rank-3 positions
    [B, L, ndim] are taken to be coordinates already and returned unchanged.
    """
    positions = check_int_positions("positions", positions, max_ndim=3)
    if positions.ndim == 3:
        if positions.shape[-1] != ndim:
            raise ValueError(
                f"positions of rank 3 must be grid coordinates [B, L, {ndim}], got shape "
                f"{positions.shape}."
            )
        return positions
    digits = []
    for _ in range(ndim - 1):
        digits.append(positions % grid_width)
        positions = positions // grid_width
    digits.append(positions)
    return jnp.stack(digits[::-1], axis=-1)


class _Grid:
    """Mixin: the flat-position -> grid mapping shared by the N-D rotary adapters."""

    def _set_grid(self, ndim: int, grid_width: int) -> None:
        self.ndim = check_positive_int("ndim", ndim)
        self.grid_width = check_positive_int("grid_width", grid_width)

    def _coordinates(self, positions: jax.Array) -> jax.Array:
        return grid_coordinates(positions, ndim=self.ndim, grid_width=self.grid_width)


@register_encoding
class AxialRoPE(_Grid, Encoding):
    """Axial N-D RoPE: the head dim is split evenly over ndim axes and each part is rotated by
    its own coordinate (Heo et al. 2024, "Rotary Position Embedding for Vision Transformer",
    RoPE-Axial; also Lu et al. 2024, FiT).

    Flat positions p are mapped to a grid in row-major order: for ndim = 2,
    p -> (p // grid_width, p % grid_width) (see `grid_coordinates`); rank-3 positions
    [B, L, ndim] are used as coordinates directly. Options: ndim, grid_width, base, layout.
    head_dim must be divisible by 2 * ndim.
    """

    name = "axial"
    place = "query_key"
    takes_positions = False  # grid positions: a random subset of a grid is no grid

    def __init__(
        self,
        head_dim: int,
        *,
        ndim: int = 2,
        grid_width: int = 32,
        base: float = 10000.0,
        layout: str = "half",
    ):
        self._set_grid(ndim, grid_width)
        head_dim = check_positive_int("head_dim", head_dim)
        if head_dim % (2 * self.ndim):
            raise ValueError(
                f"head_dim must be divisible by 2 * ndim = {2 * self.ndim} for axial RoPE, got "
                f"{head_dim}."
            )
        self.base = check_positive("base", base)
        self.layout = check_choice("layout", layout, LAYOUTS)

    def rotate(
        self, q: jax.Array, k: jax.Array, q_positions: jax.Array, k_positions: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        options = dict(base=self.base, layout=self.layout)
        return (
            apply_axial_rope(q, self._coordinates(q_positions), **options),
            apply_axial_rope(k, self._coordinates(k_positions), **options),
        )


@register_encoding
class RoPE2D(AxialRoPE):
    """2-D axial RoPE (Heo et al. 2024, "Rotary Position Embedding for Vision Transformer"):
    "axial" with ndim = 2; position p sits at (row, column) = (p // grid_width, p % grid_width).
    Options: grid_width, base, layout."""

    name = "rope_2d"
    place = "query_key"
    takes_positions = False  # grid positions

    def __init__(
        self, head_dim: int, *, grid_width: int = 32, base: float = 10000.0, layout: str = "half"
    ):
        super().__init__(head_dim, ndim=2, grid_width=grid_width, base=base, layout=layout)


@register_encoding
class RoPEMixed(_Grid, Encoding):
    """RoPE-Mixed (Heo et al. 2024, "Rotary Position Embedding for Vision Transformer"):
    learned per-head frequencies mixing the axes, angle_hi = sum_d p_d * f[d, h, i].

    Positions are mapped to a grid as in "axial" (ndim=1 gives 1-D RoPE with learned
    frequencies). Options: ndim, grid_width, theta (the frequency init, 10 in the paper),
    layout ("interleaved", the paper's pairing, or "half").
    """

    name = "rope_mixed"
    place = "query_key"
    takes_positions = False  # grid positions

    attention_params = True

    def __init__(
        self,
        num_heads: int,
        head_dim: int,
        *,
        ndim: int = 2,
        grid_width: int = 32,
        theta: float = 10.0,
        layout: str = "interleaved",
        rngs: nnx.Rngs,
    ):
        self._set_grid(ndim, grid_width)
        self.layout = check_choice("layout", layout, LAYOUTS)
        freqs = init_rope_mixed_freqs(
            rngs.params(), num_heads=num_heads, head_dim=head_dim, ndim=self.ndim, theta=theta
        )
        self.freqs = nnx.Param(freqs)

    def rotate(
        self, q: jax.Array, k: jax.Array, q_positions: jax.Array, k_positions: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        freqs = self.freqs[...]
        return (
            apply_rope_mixed(q, self._coordinates(q_positions), freqs=freqs, layout=self.layout),
            apply_rope_mixed(k, self._coordinates(k_positions), freqs=freqs, layout=self.layout),
        )
