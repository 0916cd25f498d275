"""The trainer's step clock: CPU time per step without the first step, pauses and compiles."""

import time

from pe_jax.training._compile_time import CompileClock
from pe_jax.training._step_clock import StepClock


def _spin(cpu_seconds: float) -> None:
    """Burns about `cpu_seconds` of this process's CPU time."""
    end = time.process_time() + cpu_seconds
    while time.process_time() < end:
        pass


def test_cpu_per_step_leaves_out_the_first_step_and_the_paused_blocks():
    clock = StepClock(CompileClock())
    _spin(0.3)  # the first step (compiling)
    clock.first_step_done()
    assert clock.first_step_cpu_s >= 0.3
    assert clock.cpu_seconds_per_step(0) is None  # one step: no rate yet
    _spin(0.1)  # 4 steps
    with clock.paused():  # a gate or checkpoint
        _spin(0.4)
    per_step = clock.cpu_seconds_per_step(4)
    assert 0.1 / 4 <= per_step < 0.25 / 4
    rate = clock.steps_per_second(4)
    assert rate > 4 / 0.35  # the paused 0.4 s is not in the rate's time


def _compile(clock: CompileClock, cpu_seconds: float) -> None:
    """A compile event spanning the CPU time it burns (a compile runs on one thread; on a
    loaded machine its wall span would be longer)."""
    start = time.time()
    cpu = time.process_time()
    _spin(cpu_seconds)
    span = time.process_time() - cpu
    clock._listener("/jax/core/compile/backend_compile_duration", start, start + span)


def test_compiles_after_the_first_step_are_left_out_once():
    compile_clock = CompileClock()
    compile_clock.phase = "train"
    clock = StepClock(compile_clock)
    clock.first_step_done()
    _compile(compile_clock, 0.2)  # a later bucket's compile, between steps
    _spin(0.1)  # 2 steps
    with clock.paused():  # the gate, compiling its program: left out with the pause only
        _compile(compile_clock, 0.2)
    per_step = clock.cpu_seconds_per_step(2)
    assert 0.1 / 2 <= per_step < 0.18 / 2
