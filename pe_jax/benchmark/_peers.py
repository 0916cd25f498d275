"""The same reference model and batch in x-transformers (PyTorch), when installed.

Install with `pip install -e .[bench]`. The peer trains the same architecture (post-LN encoder,
width, depth, heads, head dim, MLP ratio, dropout) on the same padded batch (inputs, padding
mask, loss mask) with Adam and gradient clipping; its batch is made once, outside the timed
step, whereas pe_jax samples its batch on device inside the step.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import numpy as np

from pe_jax.benchmark._model import LAYOUT, ReferenceModel
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


def make_peer_trainer(
    model: ReferenceModel,
    encoding: str,
    *,
    attn_flash: bool = False,
    threads: int | None = None,
):
    """An x-transformers training step (forward, backward, clip, Adam) on any batch.

    The network mirrors `model` (post-LN encoder, width, depth, heads, head dim, MLP ratio,
    dropout at every place x-transformers has one: embedding, attention, feed-forward) with the
    encoding of `PEER_OPTIONS`; `attn_flash` selects PyTorch's fused
    `scaled_dot_product_attention` inside x-transformers.

    Returns:
      (train, info): train(peer_tensors(batch)) runs one training step on a batch of any
      width up to the model's and returns the loss tensor; info holds the torch version and
      thread count.
    """
    import torch
    from x_transformers import Encoder, TransformerWrapper

    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    head_dim = model.width // model.num_heads
    options = dict(PEER_OPTIONS[encoding])
    if encoding == "rope":
        options["rotary_emb_dim"] = head_dim  # rotate the whole head, as pe_jax's rope does
    net = TransformerWrapper(
        num_tokens=get_task(model.task).vocab_size,
        max_seq_len=model.train_width,
        use_abs_pos_emb=False,
        emb_dropout=model.dropout,
        attn_layers=Encoder(
            dim=model.width,
            depth=model.num_layers,
            heads=model.num_heads,
            attn_dim_head=head_dim,
            ff_mult=model.mlp_ratio,
            pre_norm=model.norm == "pre",
            attn_dropout=model.dropout,
            ff_dropout=model.dropout,
            attn_flash=attn_flash,
            **options,
        ),
    )
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=model.learning_rate)

    def train(tensors):
        inputs, targets, valid, loss_mask = tensors
        logits = net(inputs, mask=valid)
        ce = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
        )
        loss = (ce * loss_mask.reshape(-1)).sum() / loss_mask.sum().clamp(min=1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        return loss

    info = {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads()}
    return train, info


def make_peer_step(
    model: ReferenceModel,
    encoding: str,
    *,
    attn_flash: bool = False,
    threads: int | None = None,
):
    """One x-transformers training step on a fixed padded batch (made once) as a callable.

    Returns:
      (step, info): step() runs one training step (see `make_peer_trainer`) and returns the
      loss tensor.
    """
    train, info = make_peer_trainer(model, encoding, attn_flash=attn_flash, threads=threads)
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
