"""Close matches for the "did you mean" of error messages (difflib). A low module: no JAX."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word, choices: Iterable, *, n: int = 3) -> list[str]:
    """Up to `n` of `choices` (as text) closest to `word`, best first; none when `word` is not
    text or nothing is close (difflib's ratio >= 0.6)."""
    if not isinstance(word, str):
        return []
    return difflib.get_close_matches(word, [str(c) for c in choices], n=n)


def did_you_mean(word, choices: Iterable) -> str:
    """' Did you mean 'rope'?' (or "'a' or 'b'") for the close matches of `word`, else ''."""
    matches = close_matches(word, choices)
    if not matches:
        return ""
    return f" Did you mean {' or '.join(repr(m) for m in matches)}?"
