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
)
PRESETS = ("full", "quick", "tiny")


def base_encodings() -> tuple[str, ...]:
    """Every registered encoding except the randomized_/shifted_ position variants, NoPE first."""
    names = [n for n in list_encodings() if not n.startswith(("randomized_", "shifted_"))]
    return ("none", *(n for n in names if n != "none"))


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

    @classmethod
    def preset(cls, name: str) -> BenchmarkConfig:
        """ "full" (the targets' sizes), "quick" (small sizes) or "tiny" (the test's).

        Raises:
          ValueError: an unknown preset name.
        """
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
            )
        raise ValueError(f"preset must be one of {PRESETS}, got {name!r}.")


PEERS = ("none", "rope", "alibi", "t5")
