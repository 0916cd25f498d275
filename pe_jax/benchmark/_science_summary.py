"""The science section's targets and table, from its JSON results alone."""

from __future__ import annotations

from typing import Any

from pe_jax.benchmark._format import num, table, target

# pe_jax's model-steps/s over the faster of x-transformers eager and compiled, at least.
SCIENCE_RATIO = 2.0
SIDES = (
    ("pe_jax", "pe_jax"),
    ("x_transformers", "x-transformers eager"),
    ("x_transformers_compiled", "x-transformers torch.compile"),
)


def best_peer_ratio(protocol: dict[str, Any]) -> tuple[str | None, float | None]:
    """(the faster peer side, pe_jax's model-steps/s over it), from the sides' rates alone.

    (None, None) when no peer side was timed.
    """
    sides = protocol["sides"]
    peers = [name for name in sides if name != "pe_jax"]
    if not peers:
        return None, None
    best = max(peers, key=lambda name: sides[name]["model_steps_per_s"])
    return best, sides["pe_jax"]["model_steps_per_s"] / sides[best]["model_steps_per_s"]


def science_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One target per protocol whose peer was timed: pe_jax / best peer model-steps/s >= 2."""
    out = []
    for name, protocol in results.get("science", {}).get("protocols", {}).items():
        _, ratio = best_peer_ratio(protocol)
        if ratio is not None:
            label = (
                f"science workload {name}: pe_jax model-steps/s / x-transformers best (eager or "
                "compiled)"
            )
            out.append(target(label, ratio, SCIENCE_RATIO, at_least=True))
    return out


def format_science(results: dict[str, Any]) -> list[str]:
    """The science section as Markdown lines (empty when it did not run)."""
    science = results.get("science")
    if not science:
        return []
    out = ["", f"Science workload: {science['setup']}"]
    if not science["peers_available"]:
        out += ["", f"Science peers: {science['peer_message']}"]
    else:
        out += [
            "",
            f"x-transformers {science['x_transformers_version']}, torch "
            f"{science['torch_version']}, {science['torch_threads']} thread(s), "
            f"{science['peer_device']}.",
        ]
    rows = []
    for name, p in science["protocols"].items():
        run = p["run"]
        for side, label in SIDES:
            s = p["sides"].get(side)
            if s is None:
                continue
            rows.append(
                [
                    name,
                    f"{run['task']}, K={run['num_models']}",
                    label,
                    num(s["model_steps_per_s"]),
                    num(s["model_steps_per_cpu_s"]),
                    num(s["useful_tokens_per_s"], "{:.0f}"),
                    num(s["useful_tokens_per_cpu_s"], "{:.0f}"),
                    num(s["warmup_s"], "{:.1f}"),
                    num(s.get("recompiles_in_timed_rounds"), "{:d}"),
                ]
            )
    out += table(
        [
            "protocol",
            "run",
            "side",
            "model-steps/s",
            "model-steps/CPU s",
            "useful tok/s",
            "useful tok/CPU s",
            "warm-up (compile) s",
            "recompiles timed",
        ],
        rows,
    )
    for name, p in science["protocols"].items():
        run = p["run"]
        useful = sum(p["useful_tokens"]) / max(sum(p["slot_tokens"]), 1)
        out += [
            "",  # a line right after a table would be read as one of its rows
            f"{name}: {run['num_layers']} {run['norm']}-LN blocks, width {run['width']}, "
            f"{run['num_heads']} head(s), {'causal' if run['causal'] else 'bidirectional'}, "
            f"{run['encoding']}, {run['dtype']}; batch {run['batch_size']}, lengths "
            f"{run['min_length']}..{run['max_length']} ({run['length_sampling']}); "
            f"{useful:.0%} of pe_jax's slots are real tokens.",
        ]
    return out
