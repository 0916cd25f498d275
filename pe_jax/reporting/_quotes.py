"""Docs quote generated findings, never restate them: marked blocks copied from findings.md.

A Markdown document marks each quote with a start line naming the findings file (relative to
the document's folder) and an end line:

    <!-- quote: experiments/results/quick/findings.md -->
    > ...the file's lines, each after "> "...
    <!-- /quote -->

`quote_findings` rewrites every marked block from its file; `stale_quotes` names the blocks
that differ from their file (what a test checks, so that a rerun's findings cannot drift from
the docs that quote them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pe_jax.runfiles import write_text_atomic

_BLOCK = re.compile(r"(<!-- quote: (?P<path>[^ ]+) -->\n)(?P<body>.*?)(<!-- /quote -->)", re.S)


def quoted(findings: str) -> str:
    """The quote of a findings file: its "# ..." title dropped, every line after "> "."""
    lines = findings.strip("\n").splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    while lines and not lines[0].strip():
        lines = lines[1:]
    return "".join(f"> {line}".rstrip() + "\n" for line in lines)


def _source(doc: Path, path: str) -> Path:
    source = doc.parent / path
    if not source.is_file():
        raise FileNotFoundError(f"{doc} quotes {path}, which is not a file ({source}).")
    return source


def quote_findings(doc: str | os.PathLike) -> str:
    """Rewrites every marked quote of `doc` from its findings file; returns the new text.

    Raises:
      FileNotFoundError: a marked block names a file that does not exist.
    """
    doc = Path(doc)
    text = doc.read_text()

    def fill(match: re.Match) -> str:
        body = quoted(_source(doc, match["path"]).read_text())
        return f"{match[1]}{body}{match[4]}"

    new = _BLOCK.sub(fill, text)
    if new != text:
        write_text_atomic(doc, new)
    return new


def stale_quotes(doc: str | os.PathLike) -> list[str]:
    """The findings paths whose marked quote in `doc` differs from the file (in doc order).

    Raises:
      FileNotFoundError: a marked block names a file that does not exist.
    """
    doc = Path(doc)
    return [
        m["path"]
        for m in _BLOCK.finditer(doc.read_text())
        if m["body"] != quoted(_source(doc, m["path"]).read_text())
    ]


def quote_paths(doc: str | os.PathLike) -> list[str]:
    """The findings paths that `doc` quotes, in order."""
    return [m["path"] for m in _BLOCK.finditer(Path(doc).read_text())]
