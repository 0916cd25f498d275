"""Docs quote the generated findings verbatim (pe_jax.reporting._quotes)."""

from pathlib import Path

import pytest

from experiments.quote_findings import QUOTING_DOCS
from pe_jax.reporting import quote_findings, quote_paths, quoted, stale_quotes

ROOT = Path(__file__).resolve().parents[1]
DOCS = QUOTING_DOCS  # README.md, docs/performance.md, experiments/results/README.md


def test_quoted_drops_the_title_and_prefixes_every_line():
    assert quoted("# Findings\n\nfirst\n\n- a\n") == "> first\n>\n> - a\n"


def _doc(tmp_path, body="> old\n"):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "findings.md").write_text("# Findings\n\n- x > y: diff 0.5\n")
    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n<!-- quote: f/findings.md -->\n{body}<!-- /quote -->\nend\n")
    return doc


def test_a_changed_quote_is_stale_until_refreshed(tmp_path):
    doc = _doc(tmp_path)
    assert stale_quotes(doc) == ["f/findings.md"]
    text = quote_findings(doc)
    assert "> - x > y: diff 0.5\n<!-- /quote -->" in text
    assert text.startswith("intro\n") and text.endswith("end\n")
    assert stale_quotes(doc) == []
    (tmp_path / "f" / "findings.md").write_text("# Findings\n\n- changed\n")
    assert stale_quotes(doc) == ["f/findings.md"]


def test_a_quote_of_a_missing_file_names_it(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- quote: gone/findings.md -->\n> a\n<!-- /quote -->\n")
    with pytest.raises(FileNotFoundError, match="gone/findings.md"):
        stale_quotes(doc)


@pytest.mark.parametrize("doc", DOCS)
def test_docs_quote_the_committed_findings_verbatim(doc):
    path = ROOT / doc
    assert quote_paths(path), f"{doc} quotes no generated findings"
    assert stale_quotes(path) == [], "run: python -m experiments.quote_findings"


def test_every_doc_that_quotes_is_checked():
    quoting = {
        str(path.relative_to(ROOT))
        for pattern in ("*.md", "docs/*.md", "experiments/results/*.md")
        for path in ROOT.glob(pattern)
        if quote_paths(path)
    }
    assert quoting <= set(DOCS), "add the doc to experiments/quote_findings.QUOTING_DOCS"
