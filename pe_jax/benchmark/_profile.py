"""Per-op profile of a compiled program: where a training step's time goes, by kind of op.

The program runs under `jax.profiler` tracing; XLA:CPU records one event per executed HLO
instruction (a fusion, a dot, a copy) on its worker threads. Events are matched to the
instructions of the compiled HLO text by name and grouped into kinds:

  matmul          dots and the custom fusions that wrap them
  copy/transpose  instructions XLA names copy* or transpose* (layout changes)
  elementwise     every other fusion or instruction (elementwise, reductions, slices)

and each kind is split further by whether the op's output has the attention matrix's size
(B * H * L * S elements), the part that grows with the square of the length. Times are the
sum of event durations per step; with `--xla_cpu_multi_thread_eigen=false` (the entry points'
CPU flags) an op runs on one thread and its events do not overlap.
"""

from __future__ import annotations

import collections
import glob
import math
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any

import jax

# "%name = f32[128,8,80,80]{3,2,1,0} fusion(...)": an instruction's name, type and op.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\w+)\[([\d,]*)\]\S* ([\w\-]+)\(")
_SKIP = ("end: ", "ThunkExecutor", "Threadpool")


def instructions(hlo_text: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{instruction name: (opcode, output shape)} of the ENTRY computation of compiled HLO."""
    entry = hlo_text[hlo_text.index("ENTRY") :] if "ENTRY" in hlo_text else hlo_text
    out = {}
    for line in entry.splitlines():
        match = _INSTRUCTION.match(line)
        if match:
            name, _, dims, opcode = match.groups()
            out[name] = (opcode, tuple(int(d) for d in dims.split(",") if d))
    return out


def kind_of(name: str, opcode: str) -> str:
    """ "matmul", "copy/transpose" or "elementwise" for an instruction's name and opcode."""
    if opcode in ("dot", "convolution") or name.startswith(("dot", "ynn_fusion")):
        return "matmul"
    if "copy" in name or "transpose" in name or opcode in ("copy", "transpose"):
        return "copy/transpose"
    return "elementwise"


def op_profile(
    run: Callable[[], Any], hlo_text: str, *, steps: int, matrix_elements: int, top: int = 10
) -> dict[str, Any]:
    """Per-op time of `run()`, which executes `steps` steps of the program `hlo_text` shows.

    Args:
      run: executes the steps and blocks until they are done (compile it before).
      hlo_text: the compiled program's text (`jit(f).lower(...).compile().as_text()`).
      steps: steps `run` executes (times are per step).
      matrix_elements: elements of one attention matrix, B * H * L * S.
      top: the copy shapes to list.

    Returns:
      {"ms_per_step": summed op time, "kinds": [{"kind", "attention_sized", "ms", "ops"}]
      longest first, "copies": [{"shape", "ms", "ops"}] per output shape, longest first (the `top`
      first), "unmatched_ms": time of events
      that name no ENTRY instruction (nested or runtime events)}.
    """
    table = instructions(hlo_text)
    with tempfile.TemporaryDirectory() as folder:
        options = jax.profiler.ProfileOptions()
        options.python_tracer_level = 0
        jax.profiler.start_trace(folder, profiler_options=options)
        try:
            run()
        finally:
            jax.profiler.stop_trace()
        files = glob.glob(os.path.join(folder, "**", "*.xplane.pb"), recursive=True)
        if not files:
            raise RuntimeError(f"jax.profiler wrote no trace under {folder}.")
        data = jax.profiler.ProfileData.from_file(files[0])
    per_op = collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):
                continue
            for event in line.events:
                if not event.name.startswith(_SKIP):
                    per_op[event.name] += event.duration_ns / 1e6 / steps
    kinds: dict[tuple[str, bool], list[float]] = collections.defaultdict(lambda: [0.0, 0])
    copies: dict[tuple[int, ...], list[float]] = collections.defaultdict(lambda: [0.0, 0])
    unmatched = 0.0
    for name, ms in per_op.items():
        if name not in table:
            unmatched += ms
            continue
        opcode, shape = table[name]
        kind = kind_of(name, opcode)
        entry = kinds[(kind, math.prod(shape) == matrix_elements)]
        entry[0] += ms
        entry[1] += 1
        if kind == "copy/transpose":
            copies[shape][0] += ms
            copies[shape][1] += 1
    rows = [
        {"kind": k, "attention_sized": big, "ms": ms, "ops": n}
        for (k, big), (ms, n) in kinds.items()
    ]
    return {
        "ms_per_step": sum(per_op.values()),
        "kinds": sorted(rows, key=lambda r: -r["ms"]),
        "copies": sorted(
            ({"shape": list(k), "ms": ms, "ops": n} for k, (ms, n) in copies.items()),
            key=lambda r: -r["ms"],
        )[:top],
        "unmatched_ms": unmatched,
    }
