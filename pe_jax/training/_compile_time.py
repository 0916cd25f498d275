"""Seconds spent compiling: JAX's tracing, lowering and XLA compile events, from jax.monitoring.

JAX reports each trace of a jitted function to a jaxpr, each lowering to MLIR and each backend
compilation as a timed event. A `CompileClock` collects the spans of those events while its
`measure()` block is open, and merges overlapping ones (a jit traced inside another's trace),
so that no second counts twice.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator

import jax

COMPILE_EVENTS = frozenset(
    {
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    }
)


class CompileClock:
    """Wall-clock seconds (``time.time()``) covered by JAX's compile events, per phase.

    Events are recorded while `measure()` is open, under the phase named by `phase` (e.g.
    "train", "eval"; None records nothing).
    """

    def __init__(self):
        self.phase: str | None = None
        self._spans: dict[str, list[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def _listener(self, event: str, start: float, end: float, **_) -> None:
        if event in COMPILE_EVENTS and self.phase is not None:
            with self._lock:
                self._spans.setdefault(self.phase, []).append((start, end))

    @contextlib.contextmanager
    def measure(self) -> Iterator[CompileClock]:
        """Records the compile events of the block (of every thread of the process)."""
        jax.monitoring.register_event_time_span_listener(self._listener)
        try:
            yield self
        finally:
            jax.monitoring.unregister_event_time_span_listener(self._listener)

    def seconds(self, phase: str, *, since: float = -math.inf) -> float:
        """Seconds of `phase` covered by compile events, counting only time after `since`."""
        with self._lock:
            spans = sorted((max(s, since), e) for s, e in self._spans.get(phase, []) if e > since)
        total, reach = 0.0, -math.inf
        for start, end in spans:
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total
