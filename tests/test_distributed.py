"""Beyond one device: data- and seed-parallel meshes, two processes, bfloat16 compute.

Device counts are fixed when JAX starts, so the multi-device checks run this file as a script
in subprocesses with XLA_FLAGS=--xla_force_host_platform_device_count: `worker_mesh` (one
process, 4 CPU devices) and `worker_process` (two processes with 2 devices each, joined by
`jax.distributed` on a localhost coordinator). Both compare against single-device, single-seed
runs of the same config trained here, in the pytest process (1 device).
"""

import collections
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import core as jex_core
from jax.sharding import PartitionSpec as P

from configs.copy import get_config
from pe_jax.training import (
    make_mesh,
    make_train_program,
    set_field,
    settings_from_config,
    train_and_evaluate,
)
from pe_jax.training._distributed import initialize_distributed
from pe_jax.training._settings import parse_mesh_shape

ROOT = Path(__file__).resolve().parents[1]
STEPS = 12
SEEDS = (0, 1, 2, 3)
# smoke model (D=16, 1 layer), batch 8 per seed: 2 examples per device on a data axis of 4.
ARG = (
    f"smoke,train.steps={STEPS},train.schedule=constant,train.log_every=4,"
    f"train.checkpoint_every={STEPS},eval.lengths=2;4,eval.samples=4"  # one eval bucket
)
TIMEOUT = 240


def config(arg: str = ARG, **fields):
    c = get_config(arg)
    for key, value in fields.items():
        set_field(c, key, value)  # the one typed setter every config route uses
    return c


def build(c, mesh):
    """The runner's training program for config `c` on `mesh`."""
    s = settings_from_config(c)
    return s, make_train_program(s, mesh)


def train(program, mesh, seeds, steps):
    """Trains `seeds` in one vmapped program as the runner does; returns (state, losses
    [steps, S], token accuracies [steps, S])."""
    keys = jnp.stack([jax.random.key(seed) for seed in seeds])
    with jax.set_mesh(mesh):
        state = program.init(keys)
        metrics = []
        for step in range(steps):
            state, m = program.step(state, keys, jnp.int32(step))
            metrics.append(m)
    metrics = jax.device_get(metrics)
    losses = np.stack([m["loss"] for m in metrics])
    accuracy = np.stack([m["token_accuracy"] for m in metrics])
    return state, losses, accuracy


def flat_params(state) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state["params"]))]


def logged_losses(workdir: Path) -> np.ndarray:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    steps = [r["step"] for r in records if "event" not in r]
    assert steps == list(range(1, STEPS + 1)), steps  # one writer: no duplicated records
    return np.asarray([r["loss"] for r in records if "event" not in r])


# --------------------------------------------------------------------------- subprocess side


def worker_mesh(out: Path) -> None:
    """4 devices, one process: a (2, 2) program's shardings and parameters, a (1, 4) run."""
    assert jax.device_count() == 4
    facts = {}
    mesh = make_mesh((2, 2))
    # Seeds vmapped within a device (the GPU/TPU default) for the HLO shapes below.
    s, program = build(config(seeds=SEEDS, mesh_shape=(2, 2), **{"train.seed_loop": "vmap"}), mesh)
    keys = jnp.stack([jax.random.key(seed) for seed in SEEDS])
    with jax.set_mesh(mesh):
        state = program.init(keys)
        text = program.step.lower(state, keys, jnp.int32(0)).compile().as_text()

    # Activations [S, B, W, D] in the partitioned program: 2 seeds x B / 2 examples per device.
    def shape(seeds, batch):
        return f"f32[{seeds},{batch},{s.train_width},{s.model.width}]"

    facts["per_device_activations"] = shape(2, s.batch_size // 2) in text
    facts["unsplit_activations"] = any(
        shape(*split) in text
        for split in ((4, s.batch_size), (2, s.batch_size), (4, s.batch_size // 2))
    )
    # A float all-reduce: the gradients summed over the data shards.
    facts["all_reduce"] = any(
        "f32[" in line.split(" all-reduce(")[0]
        for line in text.splitlines()
        if " all-reduce(" in line
    )
    state, _, _ = train(program, mesh, SEEDS, STEPS)  # same program: the compile is cached
    trained = jax.tree.leaves((state["params"], state["opt_state"]))
    facts["params_per_device"] = sorted(
        {str(x.sharding.shard_shape(x.shape)[0] / x.shape[0]) for x in trained}
    )
    facts["params_unsplit_beyond_seeds"] = all(
        x.sharding.shard_shape(x.shape)[1:] == x.shape[1:] for x in trained
    )
    facts["params_spec_is_seeds"] = all(x.sharding.spec == P("seeds") for x in trained)
    np.savez(out / "params_2x2_vmap.npz", *flat_params(state))
    # seed_loop="map" (the CPU default): vmapped across the 2 seed shards, looped within each.
    _, looped = build(config(seeds=SEEDS, mesh_shape=(2, 2), **{"train.seed_loop": "map"}), mesh)
    state, _, _ = train(looped, mesh, SEEDS, STEPS)
    np.savez(out / "params_2x2_map.npz", *flat_params(state))

    train_and_evaluate(config(seeds=(0,)), out / "run_1x4", log=lambda _: None)
    np.save(out / "losses_1x4.npy", logged_losses(out / "run_1x4"))
    facts["mesh_1x4"] = json.loads((out / "run_1x4" / "results.json").read_text())["mesh_shape"]

    errors = {}
    for name, fields in {
        "batch": {"train.batch_size": 6},
        "seeds": {"seeds": (0, 1, 2), "mesh_shape": (2, 2)},
        "mesh": {"mesh_shape": (3, 1)},
    }.items():
        try:
            train_and_evaluate(config(**fields), out / f"bad_{name}", log=lambda _: None)
            errors[name] = None
        except ValueError as error:
            errors[name] = str(error)
        facts[f"{name}_untouched_workdir"] = not (out / f"bad_{name}").exists()
    (out / "facts.json").write_text(json.dumps({"facts": facts, "errors": errors}))


def worker_process(out: Path) -> None:
    """One of two processes: 2 local devices, one (seeds=2, data=2) mesh over both processes."""
    initialize_distributed()  # from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID
    assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
    results = train_and_evaluate(config(seeds=(0, 1), mesh_shape=(2, 2)), out / "run", log=print)
    index = jax.process_index()
    (out / f"returned_{index}.json").write_text(json.dumps(results["metrics"]))


# ------------------------------------------------------------------------------ pytest side


def _spawn(function: str, out: Path, devices: int, **env) -> subprocess.Popen:
    env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_PLATFORMS="cpu",
        **env,
    )
    return subprocess.Popen(
        [sys.executable, __file__, function, str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(procs: list[subprocess.Popen]) -> list[str]:
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=TIMEOUT)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-4000:]
    return outputs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


class Workers:
    """The subprocesses, started together (so they overlap with work in this process) and
    each awaited once."""

    def __init__(self, root: Path):
        self.mesh_out, self.process_out = root / "mesh", root / "processes"
        self.mesh_out.mkdir()
        self.process_out.mkdir()
        port = str(_free_port())
        self._procs = {
            "mesh": [_spawn("worker_mesh", self.mesh_out, 4)],
            "processes": [
                _spawn(
                    "worker_process",
                    self.process_out,
                    2,
                    JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                    JAX_NUM_PROCESSES="2",
                    JAX_PROCESS_ID=str(index),
                )
                for index in range(2)
            ],
        }
        self._outputs = {}

    def outputs(self, name: str) -> list[str]:
        if name not in self._outputs:
            self._outputs[name] = _wait(self._procs[name])
        return self._outputs[name]

    def kill(self) -> None:
        for procs in self._procs.values():
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """Requested first by the first tests so that the subprocesses run while this process
    trains its references (2 cores: about half the wall time)."""
    started = Workers(tmp_path_factory.mktemp("workers"))
    yield started
    started.kill()


@pytest.fixture(scope="module")
def reference_program():
    """The single-device, single-seed training program (float32)."""
    mesh = make_mesh(None)
    return mesh, build(config(seeds=(0,)), mesh)[1]


@pytest.fixture(scope="module")
def reference(workers, reference_program):
    """Four single-seed runs on one device: losses [steps, 4] and final params per seed."""
    mesh, program = reference_program
    losses, params = [], []
    for seed in SEEDS:
        state, loss, _ = train(program, mesh, (seed,), STEPS)
        losses.append(loss[:, 0])
        params.append([p[0] for p in flat_params(state)])
    return np.stack(losses, axis=1), params


@pytest.fixture(scope="module")
def mesh_report(workers):
    workers.outputs("mesh")
    return json.loads((workers.mesh_out / "facts.json").read_text())


@pytest.mark.parametrize(
    "value, shape",
    [(None, None), ((2, 2), (2, 2)), ([1, 4], (1, 4)), ("2;4", (2, 4)), ("(1, 8)", (1, 8))],
)
def test_mesh_shape_from_config_or_command_line(value, shape):
    assert parse_mesh_shape(value) == shape


@pytest.mark.parametrize("value", [(2,), (0, 4), "2;", "two", (1.5, 2), (True, 4), (1, 2, 2)])
def test_bad_mesh_shape_names_the_field(value):
    with pytest.raises(ValueError, match="config.mesh_shape"):
        parse_mesh_shape(value)


def test_settings_read_the_mesh_shape():
    # "mesh_shape=2;4" after ":" in --config stores text in the (None-valued) field.
    assert settings_from_config(config(ARG + ",mesh_shape=2;4")).mesh_shape == (2, 4)
    with pytest.raises(ValueError, match="config.mesh_shape"):
        settings_from_config(config(mesh_shape=(4,)))


def test_initialize_distributed_starts_only_for_several_processes(monkeypatch):
    for name in (
        "PE_JAX_DISTRIBUTED",
        "JAX_COORDINATOR_ADDRESS",
        "JAX_NUM_PROCESSES",
        "JAX_PROCESS_ID",
        "SLURM_STEP_NUM_TASKS",
        "OMPI_COMM_WORLD_SIZE",
        "TPU_WORKER_HOSTNAMES",
        "TPU_PROCESS_ADDRESSES",
    ):
        monkeypatch.delenv(name, raising=False)
    assert initialize_distributed() is False  # a laptop: nothing to start
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")
    assert initialize_distributed() is False  # a one-task srun stays single-process
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "localhost:1")
    assert initialize_distributed("off") is False
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES"):
        initialize_distributed()  # checked before JAX is asked to connect
    with pytest.raises(ValueError, match="mode"):
        initialize_distributed("sometimes")


def _primitive_dtypes(jaxpr, found):
    for eqn in jaxpr.eqns:
        dtypes = tuple(str(v.aval.dtype) for v in eqn.invars if hasattr(v.aval, "dtype"))
        found[eqn.primitive.name].add(dtypes)
        for value in eqn.params.values():
            for sub in value if isinstance(value, list | tuple) else (value,):
                if isinstance(sub, jex_core.ClosedJaxpr):
                    _primitive_dtypes(sub.jaxpr, found)
                elif isinstance(sub, jex_core.Jaxpr):
                    _primitive_dtypes(sub, found)
    return found


@pytest.fixture(scope="module")
def bfloat16_program():
    mesh = make_mesh(None)
    return mesh, build(config(seeds=(0,), **{"model.dtype": "bfloat16"}), mesh)[1]


def test_bfloat16_compute_keeps_float32_params_angles_softmax_and_loss(bfloat16_program):
    _, program = bfloat16_program
    keys = jnp.stack([jax.random.key(0)])
    state = jax.eval_shape(program.init, keys)
    assert {x.dtype for x in jax.tree.leaves(state["params"])} == {jnp.dtype(jnp.float32)}
    # The step number stays concrete: under per-batch lengths it picks the bucket's program.
    jaxpr = jax.make_jaxpr(lambda state, keys: program.step(state, keys, 0))(state, keys).jaxpr
    found = _primitive_dtypes(jaxpr, collections.defaultdict(set))
    # sin/cos: RoPE angles; exp/log: softmax and cross-entropy; rsqrt: LayerNorm statistics.
    for name in ("sin", "cos", "exp", "log", "rsqrt"):
        assert found[name] == {("float32",)}, (name, found[name])
    assert ("bfloat16", "bfloat16") in found["dot_general"]  # the matmuls do run in bfloat16


def test_bfloat16_trains_copy_to_the_float32_accuracy_band(
    workers, reference_program, bfloat16_program
):
    accuracy = {}
    for dtype, (mesh, program) in (("float32", reference_program), ("bfloat16", bfloat16_program)):
        # A constant learning rate (ARG): the same program trains any number of steps.
        runs = [train(program, mesh, (seed,), 150)[2][-20:, 0].mean() for seed in (0, 1)]
        accuracy[dtype] = np.asarray(runs)  # per seed, over the last 20 steps
    assert (accuracy["float32"] > 0.7).all(), accuracy  # it learned (chance is 0.5)
    np.testing.assert_allclose(accuracy["bfloat16"], accuracy["float32"], atol=0.05)


def test_four_devices_equal_one(workers, reference, mesh_report):
    assert mesh_report["facts"]["mesh_1x4"] == [1, 4]
    losses = np.load(workers.mesh_out / "losses_1x4.npy")
    np.testing.assert_allclose(losses[:, 0], reference[0][:, 0], rtol=1e-5)


def test_batch_and_seeds_are_split_and_params_replicated_over_data(mesh_report):
    facts = mesh_report["facts"]
    assert facts["per_device_activations"] and not facts["unsplit_activations"]
    assert facts["all_reduce"]
    assert facts["params_per_device"] == ["0.5"]  # 2 of the 4 seeds on every device,
    assert facts["params_unsplit_beyond_seeds"]  # each of them whole
    assert facts["params_spec_is_seeds"]


@pytest.mark.parametrize("seed_loop", ["vmap", "map"])
def test_seeds_over_a_2x2_mesh_equal_single_runs(workers, reference, mesh_report, seed_loop):
    _, params = reference
    stacked = np.load(workers.mesh_out / f"params_2x2_{seed_loop}.npz")
    stacked = [stacked[f"arr_{i}"] for i in range(len(stacked.files))]
    for seed in range(len(SEEDS)):
        for got, want in zip(stacked, params[seed], strict=True):
            np.testing.assert_allclose(got[seed], want, rtol=2e-4, atol=2e-5)


def test_batch_or_seeds_not_dividing_the_mesh_fail_before_training(mesh_report):
    errors, facts = mesh_report["errors"], mesh_report["facts"]
    assert "train.batch_size=6" in errors["batch"] and "data axis (4" in errors["batch"]
    assert "seeds (3)" in errors["seeds"] and "seeds axis (2" in errors["seeds"]
    assert "mesh_shape" in errors["mesh"] and "device count 4" in errors["mesh"]
    assert all(facts[f"{name}_untouched_workdir"] for name in ("batch", "seeds", "mesh"))


def test_two_processes_train_together_and_write_one_report(workers, reference):
    outputs = workers.outputs("processes")
    run = workers.process_out / "run"
    results = json.loads((run / "results.json").read_text())
    assert results["process_count"] == 2 and results["device_count"] == 4
    assert results["mesh_shape"] == [2, 2]
    names = sorted(p.name for p in run.iterdir())
    assert names == ["checkpoints", "config.json", "examples.npz", "metrics.jsonl", "results.json"]
    assert (run / "checkpoints" / str(STEPS)).is_dir()
    np.testing.assert_allclose(logged_losses(run), reference[0][:, :2], rtol=1e-5)
    returned = [(workers.process_out / f"returned_{i}.json").read_text() for i in (0, 1)]
    returned = [json.loads(text) for text in returned]
    assert returned[0] == returned[1] == results["metrics"]
    assert f"step {STEPS}/{STEPS}" in outputs[0]  # process 0 logs,
    assert f"step {STEPS}/{STEPS}" not in outputs[1]  # process 1 does not


if __name__ == "__main__":
    globals()[sys.argv[1]](Path(sys.argv[2]))
