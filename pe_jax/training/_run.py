"""One run: train S seeds of one (task, encoding) at the training lengths, evaluate at all lengths.

The workdir holds config.json, metrics.jsonl, Orbax checkpoints and, once finished,
results.json (written atomically). Rerunning the same config in the same workdir resumes from
the last checkpoint, or returns the finished results without retraining.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from pe_jax.evaluation import baselines, bucket_means, evaluate, summarize
from pe_jax.runfiles import (
    CHECKPOINTS,
    CONFIG,
    METRICS,
    RESULTS,
    DamagedFileError,
    Results,
    read_json,
    read_results,
    truncate_metrics,
    write_examples,
    write_json_atomic,
    write_results,
)
from pe_jax.training._checkpoints import NonFiniteError, restore_latest, save_checkpoint
from pe_jax.training._compile_time import CompileClock
from pe_jax.training._distributed import barrier, fetch, is_primary
from pe_jax.training._gate import apply_until
from pe_jax.training._mesh import check_divisible, make_mesh
from pe_jax.training._settings import Settings, settings_from_config
from pe_jax.training._step import make_train_program, model_keys
from pe_jax.training._step_clock import StepClock


class RunInterrupted(Exception):  # noqa: N818 - a request, not an error
    """The run was asked to stop (`stop`); it saved a checkpoint of the step it had reached
    (when that step's parameters were finite) and a rerun resumes from there."""


def _no_fence() -> None:
    pass


def _never() -> bool:
    return False


def check_config(config: ml_collections.ConfigDict) -> tuple[Settings, jax.sharding.Mesh]:
    """The one validation pass of a run's config: every field, the optimizer and its schedule,
    and the mesh (its shape against the devices, the batch and seeds against its axes).

    Returns:
      The validated settings and the mesh the run trains on.

    Raises:
      ValueError: naming the first bad field; nothing has been read or written.
    """
    settings = settings_from_config(config)
    mesh = make_mesh(settings.mesh_shape)
    check_divisible(mesh, batch_size=settings.batch_size, num_seeds=len(settings.models))
    return settings, mesh


def _check_workdir(workdir: Path, config_dict: dict, overwrite: bool) -> str | None:
    """What config.json says: None (absent or this config), "other" (another config) or
    "damaged"; either of the last two is started afresh. Reads only, on every process, so
    that a refusal stops all of them.

    Raises:
      ValueError: another config without `overwrite`.
      DamagedFileError: a damaged config.json without `overwrite` (naming it).
    """
    saved = workdir / CONFIG
    try:
        stale = "other" if saved.exists() and read_json(saved) != config_dict else None
    except DamagedFileError:
        if not overwrite:
            raise
        stale = "damaged"
    if stale and not overwrite:
        raise ValueError(
            f"workdir {workdir} holds a run of a different config; use another workdir or "
            "pass overwrite=True (--overwrite) to start it afresh."
        )
    return stale


def _finished_results(workdir: Path, config_dict: dict, overwrite: bool) -> Results | None:
    """results.json when it is of this config, else None; a damaged one is named, or with
    `overwrite` read as absent (the run resumes from its checkpoints and writes it again).

    Raises:
      DamagedFileError: a damaged results.json without `overwrite`.
    """
    path = workdir / RESULTS
    if not path.exists():
        return None
    try:
        results = read_results(path)
    except DamagedFileError:
        if not overwrite:
            raise
        return None
    return results if results.config == config_dict else None


def _remove(path: Path) -> None:
    """Removes `path` without following a symlink out of the workdir: a link is unlinked (its
    target is left alone), a folder removed with the links inside it (not their targets).

    Raises:
      RuntimeError: `path` (or part of it) could not be removed, naming it and why.
    """
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
    except OSError as error:
        raise RuntimeError(
            f"overwrite: could not remove {path} ({error}); nothing was trained. Remove it by "
            "hand, or use another workdir."
        ) from error
    if path.is_symlink() or path.exists():
        raise RuntimeError(
            f"overwrite: {path} still exists after removing it; nothing was trained. Remove it "
            "by hand, or use another workdir."
        )


def _prepare_workdir(workdir: Path, config_dict: dict, stale: bool, fence) -> None:
    """Process 0 alone writes config.json (after clearing a stale run); the others wait until
    it has, so that none opens checkpoints/ while it is being removed.

    Raises:
      RuntimeError: the stale run's checkpoints or metrics could not be removed (the new
        config would otherwise resume the old config's weights); naming the path.
    """
    if is_primary():
        fence()
        workdir.mkdir(parents=True, exist_ok=True)
        if stale:
            # Start afresh, but a finished results.json is only replaced by the new finished one.
            _remove(workdir / CHECKPOINTS)
            _remove(workdir / METRICS)
        write_json_atomic(workdir / CONFIG, config_dict)
    barrier("pe_jax:workdir")


def format_eta(seconds: float) -> str:
    """A duration as H:MM:SS (negative durations read as 0), for progress lines."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    *,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    fence: Callable[[], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> dict:
    """Trains the seeds of `config` in one program, evaluates them per length, writes results.

    Runs unchanged on one device, several devices (config.mesh_shape) and several processes:
    every process calls it with the same config and workdir (a folder all of them see, which
    Orbax's multi-host checkpointing needs); process 0 alone writes config.json, metrics.jsonl,
    results.json and log lines, all processes take part in checkpoint saves and restores, and
    every process returns the same results.

    Args:
      config: an experiment config (see configs/copy.py for every field).
      workdir: folder for config.json, metrics.jsonl, checkpoints/ and results.json.
      overwrite: start afresh when the workdir holds a different config: its checkpoints/
        and metrics.jsonl are removed (a symlink among them is unlinked, its target kept) and
        checked gone before training.
      log: where progress lines go (process 0 only).
      fence: called before every write to the workdir (config, checkpoint, metrics line,
        examples, results); it raises to stop the run without writing (a sweep's claim check,
        `ClaimLostError`). None = no check.
      stop: polled after every training step; once True, the run saves a checkpoint of the
        step it reached and raises `RunInterrupted` (a signal handler's request). None = never.

    Returns:
      The JSON object written to results.json (`pe_jax.runfiles.Results.to_json()`).

    Raises:
      ValueError: an invalid config, or a workdir holding another config; raised before the
        workdir is written to (with `overwrite` too: nothing is deleted).
      DamagedFileError: (a ValueError) a damaged config.json or results.json, without
        `overwrite` (which replaces them); naming the file.
      NonFiniteError: a NaN/Inf loss, gradient or parameter; only finite checkpoints remain.
      RunInterrupted: `stop` returned True; the reached step is checkpointed.
      RuntimeError: with `overwrite`, the old run's files could not be removed (naming them).
    """
    fence = fence or _no_fence
    stop = stop or _never
    # The whole config, optimizer and mesh included, is checked before the workdir is read.
    settings, mesh = check_config(config)
    if not is_primary():
        log = _silent
    workdir = Path(workdir)
    config_dict = json.loads(config.to_json())
    stale = _check_workdir(workdir, config_dict, overwrite)
    results = _finished_results(workdir, config_dict, overwrite)
    if results is not None:
        if stale == "damaged" and is_primary():  # results.json and checkpoints are this run's
            fence()
            write_json_atomic(workdir / CONFIG, config_dict)
        log(f"{workdir}: finished earlier; results.json kept, nothing retrained.")
        return results.to_json()
    _prepare_workdir(workdir, config_dict, stale is not None, fence)
    clock = CompileClock()
    with jax.set_mesh(mesh), clock.measure():
        return _train_and_evaluate(
            settings, config_dict, workdir, mesh, log, clock, _Guard(fence, stop)
        )


def _silent(_: str) -> None:
    pass


class _Guard:
    """The run's `fence` (before writes) and `stop` (after steps), passed down together."""

    def __init__(self, fence: Callable[[], None], stop: Callable[[], bool]):
        self.fence, self.stop = fence, stop


def _train_and_evaluate(
    s: Settings, config_dict, workdir: Path, mesh, log, clock, guard: _Guard
) -> dict:
    clock.phase = "train"
    program = make_train_program(s, mesh)
    keys = model_keys(s)
    manager = ocp.CheckpointManager(
        (workdir / CHECKPOINTS).absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False),
    )
    guard.fence()  # restoring may delete a damaged checkpoint
    state, start = restore_latest(manager, program.abstract_state, warn=log, delete_damaged=True)
    if start is None:
        state, start = program.init(keys), 0
    else:
        log(f"resumed from step {start}")
    if is_primary():
        guard.fence()
        truncate_metrics(workdir / METRICS, start)
    params = program.abstract_state["params"]
    num_params = sum(int(np.prod(x.shape[1:])) for x in jax.tree.leaves(params))

    state, timing = _train_loop(program, state, keys, s, start, manager, workdir, log, clock, guard)
    manager.wait_until_finished()
    gate, steps_trained = fetch((program.gate(state, keys), state["control"]["steps_trained"]))

    clock.phase = "eval"
    t0 = time.perf_counter()
    if jax.process_count() > 1:
        # Evaluation programs are plain (unsharded) jits: each process evaluates all seeds on a
        # host copy of the parameters, so every process computes the same results.
        state = fetch({"params": state["params"], "rest": state["rest"]})
    ev = evaluate(
        state,
        program.graphdef,
        task=s.task,
        layout=s.protocol,
        lengths=s.eval_lengths,
        samples=s.eval_samples,
        seed=s.eval_seed,
        batch_size=s.eval_batch_size,
    )
    eval_time = time.perf_counter() - t0
    # Per-example scores (examples.npz) and the task's baselines (results.json).
    task_baselines = baselines(s.task, layout=s.protocol, lengths=ev["lengths"], seed=s.eval_seed)
    if is_primary():
        guard.fence()
        write_examples(workdir, lengths=ev["lengths"], eval_seed=s.eval_seed, **ev["examples"])

    clock.phase = None
    compile_s = {phase: clock.seconds(phase) for phase in ("train", "eval")}
    metrics = {name: values.tolist() for name, values in ev["metrics"].items()}
    results = Results(
        config=config_dict,
        task=s.task.name,
        protocol=s.protocol,
        encoding=s.model.encoding,
        seeds=list(s.seeds),
        train_max_length=s.max_length,
        lengths=ev["lengths"],
        metrics=metrics,
        summary={
            name: summarize(ev["lengths"], values, train_max=s.max_length)
            for name, values in ev["metrics"].items()
        },
        bucket_means={
            name: bucket_means(ev["lengths"], values, ev["widths"])
            for name, values in ev["metrics"].items()
        },
        num_params=num_params,
        steps=s.steps,
        batch_size=s.batch_size,
        **timing,
        eval_time_s=eval_time,
        num_compilations={
            "train_step": program.traces[0],
            "evaluation": ev["num_compilations"],
            "gate": program.gate_traces[0],
        },
        compile_s=compile_s,
        jax_version=jax.__version__,
        backend=jax.default_backend(),
        device_kind=jax.devices()[0].device_kind,
        device_count=jax.device_count(),
        process_count=jax.process_count(),
        mesh_shape=[mesh.shape["seeds"], mesh.shape["data"]],
        platform=platform.platform(),
        baselines=task_baselines,
        **_gate_fields(s, gate, steps_trained),
    )
    if is_primary():
        guard.fence()
        with open(workdir / METRICS, "a") as f:
            f.write(json.dumps({"step": s.steps, "event": "eval", **results.summary}) + "\n")
        guard.fence()
        write_results(workdir, results)
    # A rerun on any process must find results.json, and nobody may leave before it exists.
    barrier("pe_jax:results")
    # A side without lengths is null in results.json; read as NaN for the line below.
    em, acc = (
        {k: np.asarray(v, np.float64) for k, v in results.summary[m].items()}
        for m in ("exact_match", "token_accuracy")
    )
    log(
        f"done: exact match in-distribution {np.round(em['in_distribution'], 3)}, "
        f"out-of-distribution {np.round(em['out_of_distribution'], 3)}; token accuracy "
        f"{np.round(acc['in_distribution'], 3)} and {np.round(acc['out_of_distribution'], 3)}; "
        f"{sum(results.learned)}/{len(results.learned)} models learned "
        f"(gate exact match >= {s.gate_threshold}); compiled {program.traces[0]} training and "
        f"{ev['num_compilations']} evaluation programs in {compile_s['train']:.1f} s and "
        f"{compile_s['eval']:.1f} s"
    )
    return results.to_json()


def _gate_fields(s: Settings, gate: dict, steps_trained: np.ndarray) -> dict:
    """The results.json fields of the models axis and of the final gate (see `Results`)."""
    exact = np.asarray(gate["exact_match"], np.float64)
    return dict(
        models=[{"seed": seed, "learning_rate": rate} for seed, rate in s.models],
        gate={
            "metric": "exact_match",
            "threshold": s.gate_threshold,
            "lengths": list(s.gate_lengths),
            "exact_match": exact.tolist(),
            "token_accuracy": np.asarray(gate["token_accuracy"], np.float64).tolist(),
        },
        learned=(exact >= s.gate_threshold).tolist(),
        steps_trained=np.asarray(steps_trained).tolist(),
        until=s.until,
    )


def _run_gate(program, state, keys, s: Settings, step: int, metrics_file, log, fence):
    """Runs the gate at `step`, marks the models that met `s.until` done and records it.

    Returns:
      (state, whether every model is done).
    """
    values = program.gate(state, keys)
    state = apply_until(state, values["exact_match"], s.until)
    values, done = fetch((values, state["control"]["done"]))
    if metrics_file is not None:
        gate = {name: np.asarray(v).tolist() for name, v in values.items()}
        record = {"step": step, "event": "gate", "gate": {**gate, "done": done.tolist()}}
        fence()
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()
    log(
        f"gate at step {step}: exact match {np.round(values['exact_match'], 3)} at lengths "
        f"{list(s.gate_lengths)}; {int(done.sum())}/{done.size} models done"
    )
    return state, bool(done.all())


def _train_loop(program, state, keys, s: Settings, start, manager, workdir, log, clock, guard):
    """Steps from `start` to `s.steps`, logging every `log_every` and checkpointing; runs the
    gate every `gate_every` steps and stops once every model is done (`train.until`).

    The steady time per step leaves out the compilations after the first step (the first
    steps of other length buckets), as read from the `CompileClock` `clock`; the CPU time per
    step (`StepClock`) leaves out the gate and the checkpoints too. `guard.fence()` runs before
    every checkpoint and metrics write; once `guard.stop()` is True the reached step is
    checkpointed and `RunInterrupted` raised.
    """
    pending: list[tuple[int, dict]] = []
    t_start = time.perf_counter()
    t_first = None  # time after the first (compiling) step
    wall_first = None  # the same moment on the compile clock's time.time() scale
    steps_run = 0
    steps_clock = StepClock(clock)
    writer = open(workdir / METRICS, "a") if is_primary() else contextlib.nullcontext()
    # A run resumed after every model was done has nothing left to train.
    last = start if start and fetch(state["control"]["done"]).all() else s.steps
    with writer as metrics_file:
        for step in range(start, last):
            state, metrics = program.step(state, keys, np.int32(step))  # host int: picks the bucket
            pending.append((step + 1, metrics))
            steps_run += 1
            if t_first is None:
                jax.block_until_ready(metrics)
                t_first, wall_first = time.perf_counter(), time.time()
                steps_clock.first_step_done()
            done = step + 1
            gate_due = done % s.gate_every == 0 or done == s.steps  # flushed before the gate
            interrupted = guard.stop()
            due = done % s.log_every == 0 or done % s.checkpoint_every == 0
            if gate_due or due or interrupted:
                _flush(pending, metrics_file, done, s, steps_clock, steps_run, log, guard.fence)
                pending = []
            stop = False
            if gate_due:
                with steps_clock.paused():
                    state, stop = _run_gate(
                        program, state, keys, s, done, metrics_file, log, guard.fence
                    )
            if done % s.checkpoint_every == 0 or done == s.steps or stop or interrupted:
                guard.fence()
                with steps_clock.paused():
                    save_checkpoint(manager, done, state)
            if interrupted and not stop and done < s.steps:
                manager.wait_until_finished()
                raise RunInterrupted(
                    f"stopped on request after step {done} of {s.steps}; checkpointed, a rerun "
                    "resumes from it."
                )
            if stop:
                break
    total = time.perf_counter() - t_start
    timed_steps = max(steps_run - 1, 1)
    steady = float("nan")
    if t_first:
        later_compiles = clock.seconds("train", since=wall_first)
        steady = (time.perf_counter() - t_first - later_compiles) / timed_steps
    return state, {
        "train_time_s": total,
        "time_per_step_s": steady,
        "steps_run_this_session": steps_run,
        "cpu_seconds_per_step": steps_clock.cpu_seconds_per_step(steps_run - 1),
        "compile_seconds": steps_clock.first_step_cpu_s,
    }


def _flush(pending, metrics_file, done, s: Settings, steps_clock, steps_run, log, fence):
    """Fetches the pending metrics (one host sync per interval), checks them, logs a line.

    Every process fetches and checks (so all stop together on a NaN); `metrics_file` is None
    on processes other than 0, which write nothing.
    """
    fetched = fetch([m for _, m in pending])
    if metrics_file is not None:
        fence()
    for (step, _), values in zip(pending, fetched, strict=True):
        bad = [k for k in ("loss", "grad_norm") if not np.all(np.isfinite(values[k]))]
        if bad:
            raise NonFiniteError(
                f"non-finite {', '.join(bad)} at step {step} (seeds {list(s.seeds)}: "
                f"loss {values['loss']}); the last good checkpoint is kept."
            )
        if metrics_file is not None:
            record = {"step": step, **{k: np.asarray(v).tolist() for k, v in values.items()}}
            metrics_file.write(json.dumps(record) + "\n")
    if metrics_file is not None:
        metrics_file.flush()
    last = fetched[-1]
    rate = steps_clock.steps_per_second(steps_run - 1)  # compilations left out
    eta = (s.steps - done) / rate if rate == rate and rate > 0 else 0.0
    log(
        f"step {done}/{s.steps}  loss {np.mean(last['loss']):.4f}  "
        f"acc {np.mean(last['token_accuracy']):.3f}  {rate:.1f} steps/s  "
        f"ETA {format_eta(eta)}"
    )
