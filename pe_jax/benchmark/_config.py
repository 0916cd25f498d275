"""Sizes of every benchmark section: the full run, --quick, and the test's tiny."""

from __future__ import annotations

import dataclasses

from pe_jax.benchmark._model import ReferenceModel
from pe_jax.nn import list_encodings

SECTIONS = (
    "floors",
    "rope",
    "bias",
    "train",
    "profile",
    "seeds",
    "sweep",
    "eval_levers",
    "memory",
    "peers",
    "science",
    "jobs",
)
# What a plain `python -m experiments.benchmark` runs: "jobs" (whole sweeps, ~12 min a round on
# 2 cores) only when named.
DEFAULT_SECTIONS = tuple(s for s in SECTIONS if s != "jobs")
PRESETS = ("full", "quick", "tiny", "gpu")
PROTOCOLS = ("encoder", "decoder")
DEVICES = ("cpu", "gpu")


def base_encodings() -> tuple[str, ...]:
    """Every registered encoding except the randomized_/shifted_ position variants, NoPE first."""
    names = [n for n in list_encodings() if not n.startswith(("randomized_", "shifted_"))]
    return ("none", *(n for n in names if n != "none"))


@dataclasses.dataclass(frozen=True)
class ScienceConfig:
    """Sizes of the science section: K models per protocol, pe_jax in one program against
    x-transformers training them one after another (see `pe_jax.benchmark._science`).

    Attributes:
      protocols: which of "encoder" and "decoder" run.
      seeds: the seeds of both protocols; K = len(seeds) x the protocol's learning rates.
      learning_rates: the encoder protocol's peak rates (configs/sweeps/deletang_ruoss.py's);
        the decoder protocol takes its sweep's own.
      encoder_encoding: the encoding of the encoder protocol's model (`ReferenceModel`,
        the preset's `model`, with dropout 0).
      decoder_sweep, decoder_run: the decoder protocol's sweep config and the run of it
        ("task/encoding") whose model, task, lengths, batch and optimizer are trained.
      decoder_overrides: (dotted field, value) pairs set on that run's config (smaller sizes).
      rounds, steps: interleaved timed rounds, and steps of every model per side per round.
      compile: also time x-transformers under `torch.compile`.
      threads: PyTorch intra-op threads; None: the peers section's choice, else `best_threads`.
      seed_loop: pe_jax's `train.seed_loop` for the K models ("auto", "map", "vmap").
      dtype: pe_jax's compute dtype ("float32" or "bfloat16"); bfloat16 also autocasts the
        peer's forward on CUDA.
      device: "cpu", or "gpu" (the run refuses to start without a GPU in JAX and in PyTorch;
        the peer then uses CUDA and flash attention).
    """

    protocols: tuple[str, ...] = PROTOCOLS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    learning_rates: tuple[float, ...] = (1e-3, 3e-3)
    encoder_encoding: str = "none"
    decoder_sweep: str = "sweeps/kazemnejad"
    decoder_run: str = "copy_repeat/none"
    decoder_overrides: tuple[tuple[str, object], ...] = ()
    rounds: int = 5
    steps: int = 10
    compile: bool = True
    threads: int | None = None
    seed_loop: str = "auto"
    dtype: str = "float32"
    device: str = "cpu"

    def __post_init__(self):
        for name, value, allowed in (
            ("protocols", self.protocols, PROTOCOLS),
            ("dtype", (self.dtype,), ("float32", "bfloat16")),
            ("device", (self.device,), DEVICES),
            ("seed_loop", (self.seed_loop,), ("auto", "map", "vmap")),
        ):
            bad = [v for v in value if v not in allowed]
            if bad or not value:
                raise ValueError(f"science.{name} must be among {allowed}, got {value!r}.")
        if self.rounds < 1 or self.steps < 1 or not self.seeds:
            raise ValueError(
                f"science.rounds and science.steps must be >= 1 and seeds non-empty, got "
                f"{self.rounds}, {self.steps}, {self.seeds}."
            )

    @property
    def num_models(self) -> int:
        """K of the encoder protocol (the decoder's depends on its sweep's rates)."""
        return len(self.seeds) * len(self.learning_rates)


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """Sizes of every section. `preset(name)` gives the full run, --quick, and the test's tiny.

    Attributes:
      name: the preset's name, recorded in the JSON.
      repeats: timed runs per figure (the median is reported).
      copy_elements: float32 elements of the copy-floor vector.
      matmul_size: n of the [n, n] @ [n, n] matmul floor.
      rope_shape: [B, L, H, K] of q and of k for `apply_rope`.
      bias_lengths, bias_heads: L = S and H of the bias constructions.
      model: the reference model of the training, seeds, sweep, memory and peer sections.
      train_encodings: encodings whose training step is timed (NoPE must come first).
      steps_per_run: training steps per timed run.
      seed_counts, seed_encoding: S values of the seeds-in-one-program section, and its model.
      seed_loops: the `train.seed_loop` values timed for S > 1 ("vmap", "map").
      dispatch_steps, log_every: the runner-shaped loop of the dispatch measurement.
      sweep_lengths, sweep_samples, sweep_encoding: the evaluation sweep; sweep_per_bucket:
        evaluate only that many lengths per padded bucket and estimate the rest (None: all);
        sweep_models: models evaluated together, as a run's seeds x rates are (the encoder
        protocol's runs: 10). The full preset's samples are the encoder protocol's
        eval.samples (configs/sweeps/deletang_ruoss.py: 64 a length, in one call of 64).
      levers_width, levers_models: the width and models of `eval_levers`' A/B of one bucket's
        evaluation program (attention blocks, lax.map vs vmap over models, XLA options).
      memory_encodings, memory_length, memory_analysis_batch: the forward whose XLA buffers are
        analysed; memory_run_batch: the batch actually run for the process peak (None: the
        analysis batch on accelerators, `memory_cpu_run_batch` on CPU).
      peer_encodings: encodings timed in x-transformers too.
      workload_steps: steps per timing of the peer comparison on the task workload.
      profile_encoding, profile_steps: the training step whose per-op profile is taken.
      subprocess_timeout_s: limit of each memory measurement's process.
      peer_compile: time x-transformers under `torch.compile` in the peers section too.
      science: sizes of the science section (`ScienceConfig`).
      jobs_config, jobs_workers, jobs_rounds: the "jobs" section's sweep config, worker counts
        (the first is the baseline) and rounds (`pe_jax.benchmark._jobs.sweep_jobs`).
    """

    name: str
    repeats: int
    copy_elements: int
    matmul_size: int
    rope_shape: tuple[int, int, int, int]
    bias_lengths: tuple[int, ...]
    bias_heads: int
    model: ReferenceModel
    train_encodings: tuple[str, ...]
    steps_per_run: int
    seed_counts: tuple[int, ...]
    seed_encoding: str
    seed_loops: tuple[str, ...]
    dispatch_steps: int
    log_every: int
    sweep_lengths: tuple[int, ...]
    sweep_samples: int
    sweep_encoding: str
    sweep_per_bucket: int | None
    sweep_models: int
    levers_width: int
    levers_models: int
    memory_encodings: tuple[str, ...]
    memory_length: int
    memory_analysis_batch: int
    memory_run_batch: int | None
    memory_cpu_run_batch: int
    peer_encodings: tuple[str, ...]
    workload_steps: int = 10
    profile_encoding: str = "none"
    profile_steps: int = 3
    subprocess_timeout_s: float = 600.0
    peer_compile: bool = True
    science: ScienceConfig = ScienceConfig()
    jobs_config: str = "configs/sweeps/quick.py"
    jobs_workers: tuple[int, ...] = (1, 2)
    jobs_rounds: int = 1

    @property
    def requires_gpu(self) -> bool:
        """True for a preset that measures a GPU (`run_benchmark` refuses to start without)."""
        return self.science.device == "gpu"

    @classmethod
    def preset(cls, name: str) -> BenchmarkConfig:
        """ "full" (the targets' sizes), "quick" (small sizes), "tiny" (the test's) or "gpu"
        (the full sizes, and a science section of 128 models in one program, vmapped, bfloat16,
        against x-transformers on CUDA with flash attention).

        Raises:
          ValueError: an unknown preset name.
        """
        if name == "gpu":
            seeds = tuple(range(64))  # x 2 rates = 128 models a protocol
            science = ScienceConfig(
                seeds=seeds, seed_loop="vmap", dtype="bfloat16", device="gpu", threads=1
            )
            return dataclasses.replace(cls.preset("full"), name=name, science=science)
        if name == "full":
            return cls(
                name=name,
                repeats=5,
                copy_elements=1 << 26,  # 256 MiB, 8x the largest (L3) cache here
                matmul_size=2048,
                rope_shape=(16, 2048, 8, 64),  # 64 MiB per float32 tensor
                bias_lengths=(512, 2048),
                bias_heads=8,
                model=ReferenceModel(),
                # base_encodings() holds every registered base name, issue 19's pope,
                # forgetting_gate, mrope, hope and path included; one randomized variant each of
                # the rotating (rope) and the polar (pope) family.
                train_encodings=(*base_encodings(), "randomized_rope", "randomized_pope"),
                steps_per_run=2,
                seed_counts=(1, 2, 4, 8),
                seed_encoding="rope",
                seed_loops=("vmap", "map"),
                dispatch_steps=40,
                log_every=10,
                sweep_lengths=tuple(range(1, 501)),
                sweep_samples=64,
                sweep_encoding="rope",
                # Every one of the 500 lengths is too slow on a CPU: per bucket, its first and
                # last lengths (the second call gives the bucket's steady time).
                sweep_per_bucket=2,
                sweep_models=10,
                levers_width=1024,
                levers_models=10,
                memory_encodings=("none", "rope", "alibi", "t5", "fire", "cope"),
                memory_length=2048,
                memory_analysis_batch=64,
                memory_run_batch=None,
                memory_cpu_run_batch=8,
                peer_encodings=tuple(PEERS),
            )
        if name == "quick":
            small = ReferenceModel(num_layers=2, batch_size=32)
            return cls(
                name=name,
                repeats=3,
                copy_elements=1 << 25,
                matmul_size=1024,
                rope_shape=(8, 2048, 8, 64),  # 32 MiB per float32 tensor
                bias_lengths=(512,),
                bias_heads=8,
                model=small,
                train_encodings=("none", "rope", "alibi", "t5"),
                steps_per_run=2,
                seed_counts=(1, 2),
                seed_encoding="rope",
                seed_loops=("vmap", "map"),
                dispatch_steps=10,
                log_every=5,
                sweep_lengths=tuple(range(1, 501, 50)),
                sweep_samples=8,
                sweep_encoding="rope",
                sweep_per_bucket=None,
                sweep_models=2,
                levers_width=320,
                levers_models=2,
                memory_encodings=("none", "alibi"),
                memory_length=512,
                memory_analysis_batch=64,
                memory_run_batch=None,
                memory_cpu_run_batch=8,
                peer_encodings=("none", "rope"),
                science=ScienceConfig(rounds=3, steps=4),
            )
        if name == "tiny":
            tiny = ReferenceModel(num_layers=1, width=16, num_heads=2, batch_size=4, max_length=4)
            return cls(
                name=name,
                repeats=1,
                copy_elements=1 << 16,
                matmul_size=64,
                rope_shape=(1, 16, 2, 8),
                bias_lengths=(16,),
                bias_heads=2,
                model=tiny,
                train_encodings=("none",),
                steps_per_run=1,
                seed_counts=(1, 2),
                seed_encoding="none",
                seed_loops=("vmap", "map"),
                dispatch_steps=2,
                log_every=1,
                sweep_lengths=(1, 2),
                sweep_samples=2,
                sweep_encoding="none",
                sweep_per_bucket=None,
                sweep_models=2,
                levers_width=16,
                levers_models=2,
                memory_encodings=("none",),
                memory_length=16,
                memory_analysis_batch=2,
                memory_run_batch=None,
                memory_cpu_run_batch=2,
                peer_encodings=("none",),
                workload_steps=2,
                profile_steps=1,
                subprocess_timeout_s=120.0,
                # torch.compile costs about a minute of inductor per graph on 2 cores: the
                # tests time its path once, in tests/test_benchmark_science.py.
                peer_compile=False,
                science=ScienceConfig(
                    seeds=(0,),  # x 2 rates: K = 2 models a protocol
                    decoder_overrides=TINY_DECODER,
                    rounds=1,
                    steps=2,
                    compile=False,
                    threads=1,
                ),
            )
        raise ValueError(f"preset must be one of {PRESETS}, got {name!r}.")


PEERS = ("none", "rope", "alibi", "t5")
# The decoder run at a test's size: one block of width 16, batch 4, lengths 2..6.
TINY_DECODER = (
    ("model.width", 16),
    ("model.num_layers", 1),
    ("train.batch_size", 4),
    ("train.max_length", 6),
)
