"""What the targets and the printed tables share: a target's entry, numbers, Markdown tables."""

from __future__ import annotations

from typing import Any


def target(name: str, value, limit: float, *, at_least: bool) -> dict[str, Any]:
    """A target's entry: met is None when the value is unknown."""
    met = None if value is None else (value >= limit if at_least else value <= limit)
    return {"target": name, "value": value, "limit": limit, "at_least": at_least, "met": met}


def num(value, fmt: str = "{:.3g}") -> str:
    """`value` formatted, "-" for None."""
    return "-" if value is None else fmt.format(value)


def mb(value) -> str:
    """Bytes as MiB with one decimal, "-" for None."""
    return "-" if value is None else f"{value / 2**20:.1f}"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, after a blank line (a table must not continue its caption's paragraph)."""
    lines = ["", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]
