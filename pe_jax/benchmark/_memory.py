"""Peak memory of one evaluation forward pass per encoding, each in a fresh process.

Two figures per encoding:
* XLA's buffer assignment of the compiled forward (`compiled.memory_analysis()`): the exact
  temporary bytes the program needs at the requested batch and length, known without running
  it; the difference to NoPE is what the encoding adds.
* What the process actually used: device memory statistics where the backend has them (peak
  bytes in use), else the process's peak resident set size while running the forward at
  `run_batch` (on a CPU the full batch may not fit in memory next to other work).

`forward_memory` runs `measure_in_process` in a child Python that prints one JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Any

from pe_jax.benchmark._timing import (
    current_rss_bytes,
    memory_stats,
    peak_rss_bytes,
    reset_peak_rss,
)


def _forward_program(model_kwargs: dict[str, Any], encoding: str):
    """(jitted forward of (params, rest, tokens, mask), params, rest) for an eval pass."""
    from flax import nnx

    from pe_jax.benchmark._model import ReferenceModel
    from pe_jax.nn import Transformer

    config = ReferenceModel(**model_kwargs).model_config(encoding)
    graphdef, params, rest = nnx.split(Transformer(config, rngs=nnx.Rngs(0)), nnx.Param, ...)

    def forward(params, rest, tokens, mask):
        model = nnx.merge(graphdef, params, rest)
        # Same call as the evaluation program: padding mask, deterministic, arange positions.
        logits, _ = model(tokens, mask=mask, deterministic=True)
        return logits

    import jax

    return jax.jit(forward), params, rest


def measure_in_process(
    *,
    encoding: str,
    model: dict[str, Any],
    length: int,
    analysis_batch: int,
    run_batch: int,
) -> dict[str, Any]:
    """The measurements of one encoding (call in a fresh process; see `forward_memory`)."""
    import jax
    import jax.numpy as jnp

    forward, params, rest = _forward_program(model, encoding)

    def inputs(batch):
        return (
            jax.ShapeDtypeStruct((batch, length), jnp.int32),
            jax.ShapeDtypeStruct((batch, length), jnp.bool_),
        )

    analysis = forward.lower(params, rest, *inputs(analysis_batch)).compile().memory_analysis()
    compiled = forward.lower(params, rest, *inputs(run_batch)).compile()
    tokens = jnp.full((run_batch, length), 4, jnp.int32)
    mask = jnp.ones((run_batch, length), bool)
    jax.block_until_ready((tokens, mask, params, rest))
    reset = reset_peak_rss()  # so the peak below is the forward's, not the compilations'
    baseline = current_rss_bytes()
    peak_before = peak_rss_bytes()
    jax.block_until_ready(compiled(params, rest, tokens, mask))
    peak = peak_rss_bytes()
    stats = memory_stats()
    return {
        "encoding": encoding,
        "length": length,
        "analysis_batch": analysis_batch,
        "temp_bytes": int(analysis.temp_size_in_bytes),
        "argument_bytes": int(analysis.argument_size_in_bytes),
        "output_bytes": int(analysis.output_size_in_bytes),
        "run_batch": run_batch,
        "peak_rss_bytes": peak,
        "peak_reset": reset,
        # Growth of the peak over the resident size just before the forward ran; without a
        # peak reset, 0 when the forward stayed below an earlier peak (e.g. compilation).
        "forward_rss_bytes": max(peak - baseline, 0) if reset or peak > peak_before else 0,
        "device_peak_bytes": None if stats is None else stats.get("peak_bytes_in_use"),
    }


@dataclasses.dataclass(frozen=True)
class MemoryRequest:
    """What `forward_memory` measures: model fields (ReferenceModel kwargs), sizes."""

    model: dict[str, Any]
    length: int
    analysis_batch: int
    run_batch: int


def forward_memory(encoding: str, request: MemoryRequest, *, timeout_s: float) -> dict[str, Any]:
    """Runs `measure_in_process` for `encoding` in a fresh Python process, so peaks don't mix.

    Returns its dict, or {"encoding", "error"} when the child fails or times out.
    """
    args = json.dumps({"encoding": encoding, **dataclasses.asdict(request)})
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"encoding": encoding, "error": f"timed out after {timeout_s:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        return {"encoding": encoding, "error": f"exit {done.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1])


# The child's program (`python -m` of this module would import it twice: the package imports
# it before runpy runs it as __main__).
_CHILD = (
    "import json, sys; from pe_jax.benchmark._memory import measure_in_process; "
    "print(json.dumps(measure_in_process(**json.loads(sys.argv[1]))))"
)
