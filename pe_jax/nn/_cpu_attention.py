"""Scaled dot-product attention with a hand-written gradient, for XLA:CPU.

    out = softmax(q.k * scale + bias, masked) @ v          (Vaswani et al. 2017)

computed as e = exp(s - max s), out = (e @ v) / sum(e): the division is deferred until after
the product with v, so it touches [B, L, H, K] values instead of [B, H, L, S] ones. The
backward pass is the softmax gradient written out (as in FlashAttention, Dao et al. 2022,
eq. 4, without the tiling):

    p = e / sum(e),  dv = p^T g,  dp = g v^T,  ds = p * (dp - rowsum(g * out)),
    dq = ds k * scale,  dk = ds^T q * scale,  dbias = ds (summed over broadcast axes).

It keeps e in one heads-major [B, H, L, S] float32 array as the only [B, H, L, S] residual,
where XLA's automatic gradient of the same forward stores and copies several, and writes every
product as a heads-major batched matrix product (`_bmm`), so that no [B, H, L, S] matrix is
transposed (measured: two such copies a layer fewer than the einsum form, 1.25x faster
attention forward + backward at B, L, H, K = 128, 80, 8, 8 on this project's CPU). Masked logits are
set to a large finite negative number, as `jax.nn.dot_product_attention` does, so a row whose
keys are all masked averages v uniformly; their gradient to q, k and bias is zero.

Without a gradient (evaluation), long passes run over blocks of query rows (`lax.map` over
examples x queries): every query's softmax needs only its own row of logits, so a block of rows
gives the same values, and no [B, H, L, S] array is ever whole in memory, only one block's,
reused from block to block (and small enough to stay in cache). Under differentiation the
custom VJP's forward above runs unblocked, so training is unchanged, and short passes
(`block_for`) run unblocked too.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# Same value as the explicit path in `_attention` and jax.nn.dot_product_attention's XLA path.
_MASKED = -0.7 * float(jnp.finfo(jnp.float32).max)
# A gradient-free pass over at least BLOCK_MIN_KEYS keys runs in blocks of at most
# BLOCK_ELEMENTS logits (float32: 4 MiB, which stays in cache). Measured on a 2-core CPU at
# B, H, K = 64, 8, 8: 2.5-3x faster than one [B, H, L, S] pass from L = S = 128 to 1024, about
# the same between blocks of 2**18 and 2**22 logits. Training widths (S <= 80 in both
# protocols) stay below BLOCK_MIN_KEYS, so a training run's forward-only passes are unchanged.
BLOCK_MIN_KEYS = 128
BLOCK_ELEMENTS = 1 << 20


def cpu_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    bias: jax.Array | None = None,
    mask: jax.Array | None = None,
    scale: float,
    is_causal: bool = False,
    block: tuple[int, int] | None = None,
    block_logits: int = BLOCK_ELEMENTS,
) -> jax.Array:
    """softmax(q.k * scale + bias, masked) @ v with the custom gradient above.

    Args:
      q: [B, L, H, K]; k, v: [B, S, H, K] (any float dtype; logits and softmax in float32).
      bias: float [1|B, 1|H, L, S] or None (differentiable).
      mask: bool [1|B, 1|H, L, S], True = attend, or None.
      scale: logit scale, usually 1/sqrt(K).
      is_causal: also mask key index > query index (L == S, query i is key i).
      block: (examples, queries) per block of a gradient-free pass; None = `block_for`'s
        choice for `block_logits` (one block for short passes). Each must divide B and L
        respectively. The gradient's forward is never blocked.
      block_logits: logits per block of `block_for`'s choice; 0 = one block always.

    Returns:
      [B, L, H, K] in v's dtype.

    Raises:
      ValueError: a block whose sizes do not divide B and L.
    """
    batch, length = q.shape[:2]
    if block is None:
        block = block_for(batch, q.shape[2], length, k.shape[1], elements=block_logits)
    block = tuple(block)
    if len(block) != 2 or any(
        not isinstance(n, int) or n < 1 or total % n
        for n, total in zip(block, (batch, length), strict=True)
    ):
        raise ValueError(
            f"block must be (examples, queries) dividing (B, L) = ({batch}, {length}), got "
            f"{block!r}."
        )
    if is_causal:
        causal = jnp.tril(jnp.ones((length, k.shape[1]), bool))[None, None]
        mask = causal if mask is None else jnp.logical_and(mask, causal)
    return _attention(q, k, v, bias, mask, float(scale), block)


def block_for(
    batch: int, heads: int, length: int, keys: int, *, elements: int = BLOCK_ELEMENTS
) -> tuple[int, int]:
    """(examples, queries) per block of a gradient-free pass.

    (B, L), one block, when `elements` is 0, S < `BLOCK_MIN_KEYS` or the B * H * L * S logits
    fit in `elements`; else the most queries (a divisor of L, at least 8, else all L) and then
    the most examples (a divisor of B) whose block holds <= `elements` logits.
    """
    if not elements or keys < BLOCK_MIN_KEYS or batch * heads * length * keys <= elements:
        return batch, length
    rows = _largest_divisor(length, max(elements // (heads * keys), 1))
    if rows < 8:  # blocks of a few rows loop too often: whole examples instead
        rows = length
    examples = _largest_divisor(batch, max(elements // (heads * rows * keys), 1))
    return examples, rows


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(at_most, n) + 1) if n % d == 0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _attention(q, k, v, bias, mask, scale, block):
    if block != (q.shape[0], q.shape[1]):
        return _blocked(q, k, v, bias, mask, scale, block)
    return _forward(q, k, v, bias, mask, scale)[0]


def _blocked(q, k, v, bias, mask, scale, block):
    """`_forward`'s output computed block by block (`lax.map`), a block being `block` =
    (examples, queries) of the [B, L] grid of query rows."""
    batch, length, heads, dim = q.shape
    examples, rows = block
    per_batch = length // rows

    def cut(x, b0, q0, *, query_axis):
        """x's slice for the block: examples b0.. on axis 0 and queries q0.. on `query_axis`,
        where x has them (axes of size 1 broadcast and stay whole)."""
        if x is None:
            return x
        if x.shape[0] != 1:
            x = jax.lax.dynamic_slice_in_dim(x, b0, examples, axis=0)
        if query_axis is not None and x.shape[query_axis] != 1:
            x = jax.lax.dynamic_slice_in_dim(x, q0, rows, axis=query_axis)
        return x

    def one(i):
        b0, q0 = (i // per_batch) * examples, (i % per_batch) * rows
        qi = cut(q, b0, q0, query_axis=1)
        ki, vi = cut(k, b0, q0, query_axis=None), cut(v, b0, q0, query_axis=None)
        bias_i, mask_i = cut(bias, b0, q0, query_axis=2), cut(mask, b0, q0, query_axis=2)
        e, denom = _exp_logits(_heads(qi), _heads_t(ki), bias_i, mask_i, scale)
        return _bmm(e, _heads(vi)) / denom  # [examples, H, rows, K]

    out = jax.lax.map(one, jnp.arange((batch // examples) * per_batch))
    out = out.reshape(batch // examples, per_batch, examples, heads, rows, dim)
    out = jnp.transpose(out, (0, 2, 1, 4, 3, 5)).reshape(batch, length, heads, dim)
    return out.astype(v.dtype)


def _exp_logits(qh, kt, bias, mask, scale):
    """e = exp(s - max s) [B, H, L, S] and its row sums [B, H, L, 1], s the masked logits of
    qh [B, H, L, K] against kt [B, H, K, S]."""
    s = _bmm(qh, kt) * scale  # [B, H, L, S]
    if bias is not None:
        s = s + bias.astype(jnp.float32)
    if mask is not None:
        s = jnp.where(mask, s, _MASKED)
    e = jnp.exp(s - jnp.max(s, axis=-1, keepdims=True))
    return e, jnp.sum(e, axis=-1, keepdims=True)


def _forward(q, k, v, bias, mask, scale):
    e, denom = _exp_logits(_heads(q), _heads_t(k), bias, mask, scale)
    out = _bmm(e, _heads(v)) / denom  # [B, H, L, K]; deferred normalisation
    return jnp.transpose(out, (0, 2, 1, 3)).astype(v.dtype), (e, denom, out)


def _fwd(q, k, v, bias, mask, scale, block):
    del block  # the gradient needs e whole: the forward under a gradient is unblocked
    y, (e, denom, out) = _forward(q, k, v, bias, mask, scale)
    return y, (q, k, v, e, denom, out, mask, bias)


def _bwd(scale, block, residuals, g):
    del block
    q, k, v, e, denom, out, mask, bias = residuals
    g = _heads(g)  # [B, H, L, K]
    p = e * (1.0 / denom)  # [B, H, L, S]
    dv = _bmm(jnp.swapaxes(g, 2, 3), p)  # [B, H, K, S]
    dp = _bmm(g, _heads_t(v))  # [B, H, L, S]
    delta = jnp.sum(g * out, axis=-1, keepdims=True)  # [B, H, L, 1]
    ds = p * (dp - delta)
    if mask is not None:
        ds = jnp.where(mask, ds, 0.0)
    dq = _bmm(ds, _heads(k)) * scale  # [B, H, L, K]
    dk = _bmm(_heads_t(q), ds) * scale  # [B, H, K, S]
    dbias = None
    if bias is not None:
        dbias = _sum_to(ds, bias.shape).astype(bias.dtype)
    dmask = None  # bool input: no cotangent
    dq = jnp.transpose(dq, (0, 2, 1, 3))  # [B, L, H, K]
    dk, dv = (jnp.transpose(x, (0, 3, 1, 2)) for x in (dk, dv))  # [B, S, H, K]
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), dbias, dmask


def _heads(x: jax.Array) -> jax.Array:
    """[B, L, H, K] -> float32 [B, H, L, K] (a transpose of a small tensor)."""
    return jnp.transpose(x.astype(jnp.float32), (0, 2, 1, 3))


def _heads_t(x: jax.Array) -> jax.Array:
    """[B, L, H, K] -> float32 [B, H, K, L]."""
    return jnp.transpose(x.astype(jnp.float32), (0, 2, 3, 1))


def _bmm(a: jax.Array, b: jax.Array) -> jax.Array:
    """[B, H, M, N] @ [B, H, N, P] -> float32 [B, H, M, P].

    Every product of the pass is written in this one form, the batched matrix product whose
    operands XLA:CPU takes as they are laid out: the [B, H, L, S] matrices (e, p, ds) enter
    as stored and only the small [B, H, L, K] operands are transposed. Written as einsums over
    [B, L, H, K] operands, XLA transposed e and ds (two [B, H, L, S] copies a layer).
    """
    dims = (((3,), (2,)), ((0, 1), (0, 1)))
    return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


def _sum_to(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """x [B, H, L, S] summed over the axes where `shape` has 1 (a broadcast bias's gradient).

    The batch sum is a [1, B] @ [B, H*L*S] product: XLA:CPU reduces a leading axis far slower
    than it multiplies.
    """
    if shape[0] == 1 and x.shape[0] != 1:
        ones = jnp.ones((1, x.shape[0]), x.dtype)
        total = jnp.matmul(ones, x.reshape(x.shape[0], -1), precision=jax.lax.Precision.HIGHEST)
        x = total.reshape(1, *x.shape[1:])
    if shape[1] == 1 and x.shape[1] != 1:
        x = jnp.sum(x, axis=1, keepdims=True)
    return x.reshape(shape)


_attention.defvjp(_fwd, _bwd)
