"""How the report writes numbers: one owner for every figure in findings and tables."""

from __future__ import annotations

import math


def num(x: float | None) -> str:
    """Two decimals; "—" for a missing value."""
    return "—" if x is None or math.isnan(x) else f"{x:.2f}"


def bound(x: float | None) -> str:
    """An interval bound; one that two decimals would show as 0.00 keeps a significant digit,
    so that a bound above zero never reads as zero."""
    if x is not None and not math.isnan(x) and x != 0 and abs(x) < 0.005:
        return f"{x:.1g}"
    return num(x)


def interval(low: float, high: float) -> str:
    return f"[{bound(low)}, {bound(high)}]"


def below(x: float, threshold: float) -> str:
    """`x`, known to be below `threshold`, with as many decimals (2 to 6) as it takes not to
    read as reaching it (truncated at 6): 0.986 against a gate of 0.99 is written 0.986, never
    0.99."""
    for digits in range(2, 7):
        text = f"{x:.{digits}f}"
        if float(text) < threshold:
            return text
    return f"{math.floor(x * 1e6) / 1e6:.6f}"  # truncated: rounding would reach it


def format_rate(rate) -> str:
    """A learning rate as the report writes it."""
    return "?" if rate is None else f"{rate:g}"


def pvalue(p: float | None) -> str:
    """A p-value: three significant digits, "< 0.001" below that, "—" when untestable."""
    if p is None or math.isnan(p):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def p_is(p: float | None, name: str = "p") -> str:
    """ "p = 0.0123", "p < 0.001" or "p —" for a sentence."""
    text = pvalue(p)
    return f"{name} {text}" if text.startswith(("<", "—")) else f"{name} = {text}"
