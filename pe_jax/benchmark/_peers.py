"""The same model and batches in x-transformers (PyTorch), when installed.

Install with `pip install -e .[bench]`. The peer trains the same architecture as a pe_jax
`TransformerConfig` (`make_peer_net`: norm placement, causal or not, width, depth, heads, head
dim, MLP ratio, dropout, encoding) on the same padded batch (inputs, padding mask, loss mask)
with Adam and gradient clipping (`make_trainer`), eagerly or under `torch.compile`; its batches
are made outside the timed steps, whereas pe_jax samples its batch on device inside the step.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import numpy as np

from pe_jax.benchmark._model import LAYOUT, ReferenceModel
from pe_jax.nn import TransformerConfig
from pe_jax.tasks import get_task

# pe_jax encoding name -> x-transformers Encoder options.
PEER_OPTIONS = {
    "none": {},
    "rope": {"rotary_pos_emb": True},
    "alibi": {"alibi_pos_bias": True},
    "t5": {"rel_pos_bias": True},
}


def peers_available() -> str | None:
    """None when torch and x-transformers import, else the reason they don't."""
    try:
        import torch  # noqa: F401
        import x_transformers  # noqa: F401
    except ImportError as error:
        return f"skipped: {error} (install the optional extra: pip install -e .[bench])"
    return None


def _batch(model: ReferenceModel):
    """One training batch of the reference task as NumPy arrays (lengths 1..max_length)."""
    task = get_task(model.task)
    key = jax.random.key(0)
    lengths = jax.random.randint(key, (model.batch_size,), 1, model.max_length + 1)
    batch = task.sample(
        jax.random.fold_in(key, 1),
        batch_size=model.batch_size,
        length=lengths,
        layout=LAYOUT,
        width=model.train_width,
    )
    return jax.tree.map(np.array, batch)  # writable copies, as torch.from_numpy wants


def peer_tensors(batch) -> tuple:
    """(inputs, targets, valid, loss_mask) of a `Batch` of arrays as PyTorch tensors."""
    import torch

    return (
        torch.from_numpy(np.array(batch.inputs, np.int64)),
        torch.from_numpy(np.array(batch.targets, np.int64)),
        torch.from_numpy(np.array(batch.valid, bool)),
        torch.from_numpy(np.array(batch.loss_mask, np.float32)),
    )


def _peer_options(config: TransformerConfig) -> dict[str, Any]:
    """The x-transformers attention-layer options of `config`'s encoding and its options.

    Raises:
      ValueError: an encoding outside `PEER_OPTIONS`, an option x-transformers has no
        counterpart of, or an activation other than gelu (its feed-forward's default).
    """
    name, options = config.encoding, dict(config.options)
    if name not in PEER_OPTIONS:
        raise ValueError(
            f"encoding must be one of {tuple(PEER_OPTIONS)} for x-transformers, got {name!r}."
        )
    if config.activation != "gelu":
        raise ValueError(
            f"activation must be 'gelu' for x-transformers, got {config.activation!r}."
        )
    out = dict(PEER_OPTIONS[name])
    head_dim = config.width // config.num_heads
    if name == "rope":  # pe_jax's rope rotates the whole head unless rotary_fraction says less
        out["rotary_emb_dim"] = int(round(head_dim * options.pop("rotary_fraction", 1.0)))
    if name == "t5":
        out["rel_pos_num_buckets"] = options.pop("num_buckets", 32)
        out["rel_pos_max_distance"] = options.pop("max_distance", 128)
    if options:
        raise ValueError(
            f"encoding_options {sorted(options)} of {name!r} have no x-transformers counterpart."
        )
    return out


def make_peer_net(config: TransformerConfig, *, max_seq_len: int, attn_flash: bool = False):
    """The x-transformers network of a pe_jax `TransformerConfig`, in training mode.

    Same width, depth, heads, head dim, MLP ratio, norm placement (pre or post), causal
    (`Decoder`) or bidirectional (`Encoder`), dropout at every place x-transformers has one
    (embedding, attention, feed-forward), and the encoding of `PEER_OPTIONS`; no absolute
    position embedding unless the encoding is one. `attn_flash` selects PyTorch's fused
    `scaled_dot_product_attention` inside x-transformers.

    Raises:
      ValueError: see `_peer_options`.
    """
    from x_transformers import Decoder, Encoder, TransformerWrapper

    layers = Decoder if config.causal else Encoder
    net = TransformerWrapper(
        num_tokens=config.vocab_size,
        max_seq_len=max_seq_len,
        use_abs_pos_emb=False,
        emb_dropout=config.dropout,
        attn_layers=layers(
            dim=config.width,
            depth=config.num_layers,
            heads=config.num_heads,
            attn_dim_head=config.width // config.num_heads,
            ff_mult=config.mlp_ratio,
            pre_norm=config.norm == "pre",
            attn_dropout=config.dropout,
            ff_dropout=config.dropout,
            attn_flash=attn_flash,
            **_peer_options(config),
        ),
    )
    return net.train()


def make_trainer(
    net,
    *,
    learning_rate: float,
    clip_norm: float | None = 1.0,
    compile: bool = False,
    dynamic: bool = True,
    autocast: str | None = None,
):
    """A training step of `net` (forward, masked cross-entropy, backward, clip, Adam).

    Args:
      net: an x-transformers `TransformerWrapper` (`make_peer_net`).
      learning_rate: Adam's rate (constant: the schedule's host cost is nothing to time).
      clip_norm: global gradient-norm clip, or None.
      compile: wrap the forward in `torch.compile` (default mode).
      dynamic: compile with `dynamic=True`: one graph for every sequence length, shared by
        every network of the same architecture (without a mask x-transformers keeps the length
        symbolic, see `needs_mask`; duck sizing is turned off for the process, so that a first
        width equal to the batch size is not fixed); False: a graph specialised to the first
        shape.
      autocast: a device type ("cuda") whose autocast to bfloat16 wraps the forward, or None.

    Returns:
      train(tensors, mask=True) -> loss tensor, for `peer_tensors(batch)` of any width up to
      the network's; mask=False leaves the padding mask out (see `needs_mask`).
    """
    import torch

    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    if compile and dynamic:
        # Dynamo's "duck sizing" equates dimensions that happen to be equal when it first
        # traces (a batch of 32 at width 32), and then recompiles for every other width.
        import torch.fx.experimental._config as fx_config

        fx_config.use_duck_shape = False
    forward = torch.compile(net, dynamic=dynamic) if compile else net

    def train(tensors, mask: bool = True):
        inputs, targets, valid, loss_mask = tensors
        with torch.autocast(autocast or "cpu", dtype=torch.bfloat16, enabled=autocast is not None):
            logits = forward(inputs, mask=valid if mask else None)
        ce = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
        )
        loss = (ce * loss_mask.reshape(-1)).sum() / loss_mask.sum().clamp(min=1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
        optimizer.step()
        return loss

    return train


def needs_mask(valid: np.ndarray, *, causal: bool) -> bool:
    """Whether a batch needs its padding mask for the real tokens' outputs and gradients.

    Not when every slot is real (the encoder protocol's batches, cropped to their exact width:
    one length per step), nor for a causal model whose padding is on the right (no real token
    sees a later slot, and the loss mask leaves the padded slots out). x-transformers' masked
    path fixes the sequence length under `torch.compile` (a recompilation per new width), so
    the science workload leaves the mask out wherever this says it may, on both peer variants.

    Args:
      valid: bool [B, W], True = real token.
    """
    valid = np.asarray(valid, bool)
    if valid.all():
        return False
    right_padded = bool((valid[:, 1:] <= valid[:, :-1]).all())
    return not (causal and right_padded)


def make_peer_trainer(
    model: ReferenceModel,
    encoding: str,
    *,
    attn_flash: bool = False,
    threads: int | None = None,
    compile: bool = False,
):
    """An x-transformers training step (forward, backward, clip, Adam) of the reference model.

    The network mirrors `model` (`make_peer_net` of `model.model_config(encoding)`: post-LN
    encoder, width, depth, heads, head dim, MLP ratio, dropout); `compile` wraps its forward
    in `torch.compile` (see `make_trainer`).

    Returns:
      (train, info): train(peer_tensors(batch)) runs one training step on a batch of any
      width up to the model's and returns the loss tensor; info holds the torch version and
      thread count.
    """
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = make_peer_net(
        model.model_config(encoding), max_seq_len=model.train_width, attn_flash=attn_flash
    )
    # One fixed batch shape: a compiled graph specialised to it.
    train = make_trainer(net, learning_rate=model.learning_rate, compile=compile, dynamic=False)
    info = {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads()}
    return train, info


def make_peer_step(
    model: ReferenceModel,
    encoding: str,
    *,
    attn_flash: bool = False,
    threads: int | None = None,
    compile: bool = False,
):
    """One x-transformers training step on a fixed padded batch (made once) as a callable.

    Returns:
      (step, info): step() runs one training step (see `make_peer_trainer`) and returns the
      loss tensor.
    """
    train, info = make_peer_trainer(
        model, encoding, attn_flash=attn_flash, threads=threads, compile=compile
    )
    tensors = peer_tensors(_batch(model))
    return (lambda: train(tensors)), info


def time_peer_step(
    model: ReferenceModel,
    encoding: str,
    *,
    repeats: int,
    steps_per_run: int,
    threads: int | None = None,
    attn_flash: bool = False,
) -> dict[str, Any]:
    """Median time of one x-transformers training step (see `make_peer_step`).

    threads: PyTorch intra-op threads (None: PyTorch's default). On a loaded machine with few
    cores, two OpenMP threads can be far slower than one for small ops (each parallel region
    waits for both threads to be scheduled), so `best_threads` picks the faster setting.
    """
    step, info = make_peer_step(model, encoding, attn_flash=attn_flash, threads=threads)
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps_per_run):
            loss = step()
        loss.item()
        times.append((time.perf_counter() - start) / steps_per_run)
    median = float(np.median(times))
    return {
        "encoding": encoding,
        "attn_flash": attn_flash,
        "step_s": median,
        "tokens_per_s": model.tokens_per_step / median,
        **info,
    }


def best_threads(model: ReferenceModel, *, repeats: int, steps_per_run: int) -> dict[str, Any]:
    """Times the NoPE peer with 1 thread and with one per CPU; returns {threads: step_s, best}."""
    counts = sorted({1, os.cpu_count() or 1})
    times = {
        n: time_peer_step(model, "none", repeats=repeats, steps_per_run=steps_per_run, threads=n)[
            "step_s"
        ]
        for n in counts
    }
    return {"step_s_by_threads": times, "best": min(times, key=times.get)}
