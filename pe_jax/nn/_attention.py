"""Multi-head self-attention with the encoding hooks, a fast path and an explicit path.

Fast path (every encoding without content terms), chosen by backend (`attend`'s
`implementation`, the config's `attention_impl`): on CPU the custom-gradient einsum attention of
`_cpu_attention`; elsewhere `jax.nn.dot_product_attention(q, k, v, bias=..., mask=...)`, so the
backend may pick an XLA, cuDNN or TPU kernel. With the default
implementation (XLA, the only one on CPU), logits are computed with float32 accumulation
(`preferred_element_type`), the float32 bias is added in float32, the softmax runs in float32
and the probabilities are cast back to the value dtype before `probs @ v`: under a bfloat16
compute dtype only q, k, v, probs and the output are bfloat16. Masked logits are replaced by a
large finite negative number, so a query row whose keys are all masked gets a uniform (finite)
average instead of NaN.

Explicit path (encodings with `uses_content`, e.g. Shaw, Transformer-XL, CoPE): the same
arithmetic written as einsums so that the content terms fit in,
  logits = (q.k + content_logits) / sqrt(K) + bias,   out = probs @ v + content_values.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from pe_jax._validate import check_choice
from pe_jax.nn._base import Encoding
from pe_jax.nn._config import ATTENTION_IMPLS, TransformerConfig
from pe_jax.nn._cpu_attention import BLOCK_ELEMENTS, cpu_attention

# Same role as the large negative number of jax.nn.dot_product_attention: finite, so fully
# masked rows give a uniform softmax rather than NaN, and far below any real logit.
_MASKED = -0.7 * float(jnp.finfo(jnp.float32).max)


def causal_mask(q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
    """bool [1|B, 1, L, S]: key position <= query position.

    Comparing positions (not indices) makes the same mask serve full passes and KV-cache steps,
    where query i sits at position offset + i and cache slot j holds position j.

    Args:
      q_positions: int [L] or [B, L].
      k_positions: int [S] or [B, S].
    """
    q = q_positions if q_positions.ndim == 2 else q_positions[None]
    k = k_positions if k_positions.ndim == 2 else k_positions[None]
    return k[:, None, None, :] <= q[:, None, :, None]


def combine_masks(*masks: jax.Array | None) -> jax.Array | None:
    """Logical and of the masks that are not None (broadcasting), or None if all are None."""
    result = None
    for mask in masks:
        if mask is not None:
            result = mask if result is None else jnp.logical_and(result, mask)
    return result


def attend(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    encoding: Encoding,
    q_positions: jax.Array,
    k_positions: jax.Array,
    bias: jax.Array | None = None,
    mask: jax.Array | None = None,
    is_causal: bool = False,
    implementation: str = "auto",
    block_logits: int = BLOCK_ELEMENTS,
) -> jax.Array:
    """Scaled dot-product attention with an encoding's logits and content hooks.

    softmax((q.k + content) / sqrt(K) + bias, masked) @ v + content_values
    (Vaswani et al. 2017; content terms as in Shaw et al. 2018 and Dai et al. 2019).

    Args:
      q: [B, L, H, K] (already rotated by the encoding).
      k, v: [B, S, H, K].
      encoding: supplies content_logits / content_values when `encoding.uses_content`.
      q_positions: int [L] or [B, L]; k_positions: int [S] or [B, S] (for the content hooks).
      bias: float32 [1|B, 1|H, L, S] or None.
      mask: bool [1|B, 1|H, L, S], True = attend, or None.
      is_causal: additionally mask key index > query index (only valid when L == S and query i
        is key i, i.e. a full forward pass); lets the fast path use a causal kernel.
      implementation: for encodings without content terms, "xla" uses
        `jax.nn.dot_product_attention` (cuDNN / TPU kernels where the backend has them),
        "cpu" the custom-gradient einsum attention of `_cpu_attention` (faster on XLA:CPU),
        "auto" picks "cpu" when the default backend is the CPU and "xla" otherwise.
      block_logits: "cpu" only: a gradient-free pass over long keys runs in blocks of query
        rows of at most this many logits, never holding [B, H, L, S] whole (`_cpu_attention`;
        the same values); 0 = one block.

    Returns:
      [B, L, H, K] in v's dtype.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    if not encoding.uses_content and resolve_implementation(implementation) == "cpu":
        return cpu_attention(
            q,
            k,
            v,
            bias=bias,
            mask=mask,
            scale=scale,
            is_causal=is_causal,
            block_logits=block_logits,
        )
    bias = _broadcast_batch(bias, q.shape[0])
    if not encoding.uses_content:
        return jax.nn.dot_product_attention(
            q, k, v, bias=bias, mask=mask, scale=scale, is_causal=is_causal
        )
    probs = attention_probs(
        q,
        k,
        encoding=encoding,
        q_positions=q_positions,
        k_positions=k_positions,
        bias=bias,
        mask=mask,
        is_causal=is_causal,
    )
    return _apply_probs(probs, v, encoding, q_positions, k_positions)


def resolve_implementation(implementation: str) -> str:
    """ "auto" -> "cpu" on a CPU default backend, else "xla"; "xla" and "cpu" as they are.

    Raises:
      ValueError: any other value.
    """
    check_choice("attention_impl", implementation, ATTENTION_IMPLS)
    if implementation == "auto":
        return "cpu" if jax.default_backend() == "cpu" else "xla"
    return implementation


def _apply_probs(
    probs: jax.Array,
    v: jax.Array,
    encoding: Encoding,
    q_positions: jax.Array,
    k_positions: jax.Array,
) -> jax.Array:
    """The explicit path's output: probs [B, H, L, S] @ v [B, S, H, K] + content values."""
    out = jnp.einsum("bhls,bshk->blhk", probs.astype(v.dtype), v)
    extra = encoding.content_values(probs, q_positions, k_positions)
    if extra is not None:
        out = out + extra.astype(out.dtype)
    return out


def attention_probs(
    q: jax.Array,
    k: jax.Array,
    *,
    encoding: Encoding,
    q_positions: jax.Array,
    k_positions: jax.Array,
    bias: jax.Array | None = None,
    mask: jax.Array | None = None,
    is_causal: bool = False,
) -> jax.Array:
    """The attention weights `attend` applies to v: softmax((q.k + content) / sqrt(K) + bias).

    `attend`'s explicit path (float32 logits, masked logits set to a large finite negative
    number); also used for inspection and plots, since the fast path never materialises them.
    Arguments as in `attend`.

    Returns:
      float32 [B, H, L, S]; every row sums to 1.
    """
    if is_causal:
        mask = combine_masks(mask, jnp.tril(jnp.ones((q.shape[1], k.shape[1]), bool))[None, None])
    logits = jnp.einsum("blhk,bshk->bhls", q, k, preferred_element_type=jnp.float32)
    if encoding.uses_content:
        content = encoding.content_logits(q, k, q_positions, k_positions, mask=mask)
        if content is not None:
            logits = logits + content.astype(jnp.float32)
    logits = logits * (1.0 / math.sqrt(q.shape[-1]))
    if bias is not None:
        logits = logits + bias.astype(jnp.float32)
    if mask is not None:
        logits = jnp.where(mask, logits, _MASKED)
    return jax.nn.softmax(logits, axis=-1)


class Attention(nnx.Module):
    """Multi-head self-attention: projections, the encoding's rotate hook, `attend`, output.

    With a KV cache the new keys are rotated at their own positions and then written, so the
    cache holds rotated keys and old keys are never re-rotated.

    When `sow_attention_probs` is True (False by default; set it on a copy of a model with
    `nnx.with_attributes(model, sow_attention_probs=True)`), each call computes its
    probabilities explicitly (`attention_probs`), uses them for the output, and records them
    with `self.sow(nnx.Intermediate, "attention_probs", probs)`; read them back by running the
    model under `nnx.capture(..., nnx.Intermediate)`. When False, the fast path never
    materialises the probabilities and nothing is recorded.

    `block_logits` (`attend`'s; default `BLOCK_ELEMENTS`, 0 = never block) bounds the logits
    a gradient-free pass of the CPU kernel holds at once; set it on a copy with
    `nnx.with_attributes` as above.
    """

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        width, heads = config.width, config.num_heads
        self.num_heads = heads
        self.head_dim = config.head_dim

        def linear():
            return nnx.Linear(
                width,
                width,
                use_bias=False,
                dtype=config.dtype,
                param_dtype=config.param_dtype,
                rngs=rngs,
            )

        self.query, self.key, self.value, self.out = linear(), linear(), linear(), linear()
        self.sow_attention_probs = False
        self.implementation = config.attention_impl
        self.block_logits = BLOCK_ELEMENTS

    def __call__(
        self,
        x: jax.Array,
        *,
        encoding: Encoding,
        positions: jax.Array,
        bias: jax.Array | None = None,
        layer_bias: bool = False,
        mask: jax.Array | None = None,
        is_causal: bool = False,
        cache: dict[str, jax.Array] | None = None,
        cache_index: jax.Array | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array] | None]:
        """Self-attention of x [B, L, D] at `positions` (int [L] or [B, L]).

        Args:
          x: [B, L, D].
          encoding: the encoding whose attention hooks this layer uses.
          positions: int [L] or [B, L], positions of the queries (and of the new keys).
          bias: precomputed bias (shared encodings), float32 [1|B, H, L, S], or None.
          layer_bias: compute `encoding.bias(...)` here (per-layer encodings); added to `bias`.
          mask: bool [1|B, 1, L, S] or None.
          is_causal: see `attend`; must be False with a cache.
          cache: {"k", "v": [B, S_max, H, K]} or None; slot j holds position j.
          cache_index: int [B], first slot written per example (the position offset).

        Returns:
          (y [B, L, D], updated cache or None).
        """
        batch, length, _ = x.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        q = over_tokens(self.query, x).reshape(shape)
        k = over_tokens(self.key, x).reshape(shape)
        v = over_tokens(self.value, x).reshape(shape)
        q, k = encoding.rotate(q, k, positions, positions)
        k_positions = positions
        if cache is not None:
            k, v = _write(cache["k"], k, cache_index), _write(cache["v"], v, cache_index)
            cache = {"k": k, "v": v}
            k_positions = jnp.arange(k.shape[1], dtype=jnp.int32)
        if layer_bias:
            bias = combine_bias(bias, encoding.bias(positions, k_positions))
        extra = encoding.input_bias(x, q, k, positions, k_positions)
        if extra is not None:
            bias = combine_bias(bias, extra)
            if encoding.replaces_qk:
                q = jnp.zeros_like(q)
        kwargs = dict(
            encoding=encoding,
            q_positions=positions,
            k_positions=k_positions,
            bias=bias,
            mask=mask,
            is_causal=is_causal,
        )
        if self.sow_attention_probs:
            probs = attention_probs(q, k, **kwargs)
            self.sow(nnx.Intermediate, "attention_probs", probs)
            y = _apply_probs(probs, v, encoding, positions, k_positions)
        else:
            y = attend(
                q,
                k,
                v,
                implementation=self.implementation,
                block_logits=self.block_logits,
                **kwargs,
            )
        return over_tokens(self.out, y.reshape(batch, length, -1)), cache


def _broadcast_batch(bias: jax.Array | None, batch: int) -> jax.Array | None:
    """A [1, H, L, S] bias broadcast to [B, H, L, S], with the batch sum of its gradient as a
    matrix-vector product; other biases (None, already [B, ...], B = 1) are returned as they are.

    The forward value is a broadcast, which XLA fuses into the logits (nothing [B, H, L, S] is
    stored). The gradient of a broadcast is a sum over the batch axis, and XLA's CPU reduction
    over a leading axis is slow enough to dominate the training step of a model with learned
    biases (T5, Kerple, FIRE); as the matrix-vector product ones[B] @ g it is cheap.
    """
    if bias is None or bias.shape[0] != 1 or batch == 1:
        return bias
    return _broadcast_batch_vjp(bias, batch)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _broadcast_batch_vjp(bias: jax.Array, batch: int) -> jax.Array:
    return jnp.broadcast_to(bias, (batch, *bias.shape[1:]))


def _broadcast_batch_fwd(bias, batch):
    return _broadcast_batch_vjp(bias, batch), None


def _broadcast_batch_bwd(batch, _, g):
    # [1, B] @ [B, H*L*S]: the batch is the contracting, major axis, so no transpose is needed.
    ones = jnp.ones((1, batch), g.dtype)
    total = jnp.matmul(ones, g.reshape(batch, -1), precision=jax.lax.Precision.HIGHEST)
    return (total.reshape(1, *g.shape[1:]),)


_broadcast_batch_vjp.defvjp(_broadcast_batch_fwd, _broadcast_batch_bwd)


def over_tokens(linear: nnx.Linear, x: jax.Array) -> jax.Array:
    """`linear` applied to x [..., D] as one [N, D] matrix of tokens: linear(x) [..., F].

    The same values as `linear(x)`. A dense layer on a [B, L, D] input is a dot that contracts
    two axes for the kernel's gradient, for which XLA:CPU transposes x into a [D, B * L] copy;
    on the flattened [B * L, D] matrix the gradient's product takes x as it is stored
    (measured on this project's CPU: one [D, B * L] copy per dense layer fewer).
    """
    return linear(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


def combine_bias(a: jax.Array | None, b: jax.Array | None) -> jax.Array | None:
    """Sum of two optional biases (None is zero)."""
    if a is None:
        return b
    return a if b is None else a + b


def _write(cache: jax.Array, new: jax.Array, index: jax.Array) -> jax.Array:
    """Writes new [B, T, H, K] into cache [B, S, H, K] at slots index[b] .. index[b] + T - 1.

    `lax.dynamic_update_slice` clamps the start so that the update fits: callers keep
    index + T <= S (checked by `decode_step` when the offset is concrete).
    """
    new = new.astype(cache.dtype)

    def one(c, n, i):
        return jax.lax.dynamic_update_slice(c, n, (i, 0, 0))

    return jax.vmap(one)(cache, new, index)
