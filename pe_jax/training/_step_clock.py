"""Wall and process CPU time of the training steps, without compilation and pauses.

Wall time per step counts whatever else the machine did meanwhile (another job, a process
stopped and resumed). Process CPU time (`time.process_time`: every thread of this process,
user and system) counts only this process's work, so it is the cost axis to compare encodings
trained on a shared machine. The first step compiles the step program; it is timed apart.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from pe_jax.training._compile_time import CompileClock


class StepClock:
    """Times the steps of one training session.

    Call `first_step_done()` once the first step's outputs are ready, wrap work between steps
    that is not a step (the gate, checkpoints) in `paused()`, and read the rates at the end.
    Compilations after the first step (the first step of another length bucket, the gate's
    program) are taken from the `CompileClock`; their CPU time is taken as their wall time,
    as XLA compiles a program on one thread.
    """

    def __init__(self, compile_clock: CompileClock):
        self._compile_clock = compile_clock
        self._cpu_start = time.process_time()
        self._first: tuple[float, float, float] | None = None  # perf_counter, time, CPU
        self._paused_wall = 0.0
        self._paused_cpu = 0.0
        self._paused_compiles = 0.0  # compile seconds inside paused blocks (left out already)
        self.first_step_cpu_s: float | None = None

    def first_step_done(self) -> None:
        """Marks the end of the first (compiling) step."""
        cpu = time.process_time()
        self._first = (time.perf_counter(), time.time(), cpu)
        self.first_step_cpu_s = cpu - self._cpu_start

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Leaves the block's wall and CPU time out of the steps' time."""
        wall, cpu, since = time.perf_counter(), time.process_time(), time.time()
        try:
            yield
        finally:
            self._paused_wall += time.perf_counter() - wall
            self._paused_cpu += time.process_time() - cpu
            self._paused_compiles += self._compile_clock.seconds("train", since=since)

    def _later_compiles(self) -> float:
        """Compile seconds after the first step outside the paused blocks."""
        since = self._first[1]
        return self._compile_clock.seconds("train", since=since) - self._paused_compiles

    def steps_per_second(self, steps_after_first: int) -> float:
        """Steps after the first over their wall time, without the paused blocks and the
        later compilations (NaN before two steps)."""
        if self._first is None or steps_after_first < 1:
            return float("nan")
        elapsed = time.perf_counter() - self._first[0] - self._paused_wall
        elapsed -= self._later_compiles()
        return steps_after_first / elapsed if elapsed > 0 else float("nan")

    def cpu_seconds_per_step(self, steps_after_first: int) -> float | None:
        """Process CPU seconds per step after the first, without the paused blocks and the
        later compilations; None before two steps."""
        if self._first is None or steps_after_first < 1:
            return None
        cpu = time.process_time() - self._first[2] - self._paused_cpu - self._later_compiles()
        return max(cpu, 0.0) / steps_after_first
