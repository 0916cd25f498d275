"""Refresh the docs' quotes of generated findings (marked blocks; see pe_jax.reporting).

  python -m experiments.quote_findings [DOC.md ...]   # default: every doc that quotes one

Each `<!-- quote: path/to/findings.md -->` ... `<!-- /quote -->` block is rewritten from the
file it names, so that a document only ever quotes what a report generated.
"""

import sys

from pe_jax.reporting import quote_findings, quote_paths

# The documents that quote generated files (tests/test_doc_quotes.py checks the same list).
QUOTING_DOCS = ("README.md", "docs/performance.md", "experiments/results/README.md")


def main(docs: list[str]) -> None:
    for doc in docs or list(QUOTING_DOCS):
        quote_findings(doc)
        print(f"{doc}: {len(quote_paths(doc))} quote(s) refreshed")


if __name__ == "__main__":
    main(sys.argv[1:])
