"""Floors of the device (copy bandwidth, matmul rate) and the encoding kernels measured against
them: `apply_rope` and the logit-bias constructions."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax.benchmark._timing import measure, measure_chain
from pe_jax.encodings import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    apply_rope_complex,
    fire_bias,
    init_fire_params,
    init_kerple_params,
    kerple_log_bias,
    t5_bias,
)


def copy_floor(*, elements: int, repeats: int) -> dict[str, Any]:
    """Achieved bandwidth of y = 2 x on a float32 vector: (bytes read + written) / time.

    Elementwise scaling is the cheapest pass over memory XLA can emit (one read, one write per
    element), so no elementwise kernel of the same size can beat it: it is the floor that
    `apply_rope` is compared with. Two forms: `fresh`, a new output array per call, as every
    jitted function that returns a new array (apply_rope included) gets; and `in_place`, the
    input donated so the output reuses its buffer. On CPU the gap between them is the cost of
    first-touching freshly mapped output pages, which no kernel writing a new array avoids.
    """
    x = jnp.arange(elements, dtype=jnp.float32)
    moved = 2 * x.nbytes
    fresh = measure(jax.jit(lambda v: v * 2.0), x, repeats=repeats)
    scale = jax.jit(lambda v: v * 2.0, donate_argnums=0)
    in_place, _ = measure_chain(
        lambda v, i: (scale(v), None), x + 0.0, repeats=repeats, steps_per_run=3
    )
    return {
        "elements": elements,
        "bytes": moved,
        **fresh,
        "bytes_per_s": moved / fresh["median_s"],
        "in_place_median_s": in_place["median_s"],
        "in_place_bytes_per_s": moved / in_place["median_s"],
    }


def matmul_floor(*, size: int, repeats: int) -> dict[str, Any]:
    """Achieved float32 rate of a [n, n] @ [n, n] matmul: 2 n^3 / time."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (size, size), jnp.float32)
    b = jax.random.normal(key_b, (size, size), jnp.float32)
    t = measure(jax.jit(jnp.matmul), a, b, repeats=repeats)
    flops = 2 * size**3
    return {"size": size, "flops": flops, **t, "flops_per_s": flops / t["median_s"]}


def rope_rows(
    *, shape: tuple[int, int, int, int], repeats: int, copy_bytes_per_s: float
) -> list[dict[str, Any]]:
    """`apply_rope` on q and k together ([B, L, H, K] each, positions [L] shared by the batch).

    Rows: float32 and bfloat16 in the "half" and "interleaved" layouts, then the complex-number
    reference (float32, half). Bytes moved = q and k read plus written; the fraction is of the
    copy floor's bytes/s.
    """
    batch, length, heads, head_dim = shape
    positions = jnp.arange(length, dtype=jnp.int32)
    inv_freq = jnp.asarray(10000.0 ** (-np.arange(0, head_dim, 2) / head_dim), jnp.float32)
    cases = [
        ("apply_rope", apply_rope, dtype, layout)
        for dtype in (jnp.float32, jnp.bfloat16)
        for layout in ("half", "interleaved")
    ]
    cases.append(("apply_rope_complex", apply_rope_complex, jnp.float32, "half"))
    rows = []
    for name, fn, dtype, layout in cases:
        key_q, key_k = jax.random.split(jax.random.key(1))
        q = jax.random.normal(key_q, shape, dtype)
        k = jax.random.normal(key_k, shape, dtype)

        def both(q, k, positions, fn=fn, layout=layout):
            rotate = lambda x: fn(x, positions, inv_freq=inv_freq, layout=layout)  # noqa: E731
            return rotate(q), rotate(k)

        t = measure(jax.jit(both), q, k, positions, repeats=repeats)
        moved = 2 * (q.nbytes + k.nbytes)
        rate = moved / t["median_s"]
        rows.append(
            {
                "function": name,
                "dtype": jnp.dtype(dtype).name,
                "layout": layout,
                "shape": list(shape),
                "bytes": moved,
                **t,
                "bytes_per_s": rate,
                "fraction_of_copy": rate / copy_bytes_per_s,
            }
        )
        del q, k
    return rows


def _bias_builders(num_heads: int) -> dict[str, tuple[Any, dict[str, Any]]]:
    """name -> (bias function of (q_positions, k_positions, **params), params)."""
    key_kerple, key_fire, key_t5 = jax.random.split(jax.random.key(2), 3)
    return {
        "alibi": (alibi_bias, {"slopes": alibi_slopes(num_heads)}),
        "t5": (
            lambda q, k, table: t5_bias(q, k, table=table, bidirectional=True),
            {"table": 0.02 * jax.random.normal(key_t5, (32, num_heads), jnp.float32)},
        ),
        "kerple_log": (kerple_log_bias, init_kerple_params(key_kerple, num_heads, kind="log")),
        "fire": (
            lambda q, k, **params: fire_bias(q, k, params=params),
            init_fire_params(key_fire, num_heads),
        ),
    }


def bias_rows(
    *, lengths: tuple[int, ...], num_heads: int, repeats: int, copy_bytes_per_s: float
) -> list[dict[str, Any]]:
    """Time to build each logit bias, float32 [1, H, L, L] from positions [L], at L = S.

    Bytes = the bias written once; the fraction is of the copy floor's bytes/s (a bias can at
    best be written at the floor's rate; FIRE's MLP and T5's log make them compute-bound).
    """
    rows = []
    for name, (fn, params) in _bias_builders(num_heads).items():
        program = jax.jit(lambda q, k, params, fn=fn: fn(q, k, **params))
        for length in lengths:
            positions = jnp.arange(length, dtype=jnp.int32)
            t = measure(program, positions, positions, params, repeats=repeats)
            written = num_heads * length * length * 4
            rate = written / t["median_s"]
            rows.append(
                {
                    "encoding": name,
                    "length": length,
                    "num_heads": num_heads,
                    "bytes": written,
                    **t,
                    "bytes_per_s": rate,
                    "fraction_of_copy": rate / copy_bytes_per_s,
                }
            )
    return rows
