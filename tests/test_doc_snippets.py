"""Every ```python block of README.md and docs/*.md runs as written.

Each block runs alone, in a fresh Python process started in the repository root (where a
reader runs the README's commands, so `configs` imports), with a time limit. A block that is
deliberately not standalone would be fenced ```python-fragment and explained in its doc; this
test skips those, and today no doc has one. New docs/*.md files are picked up automatically.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A fence line that opens a Python block: ```python, nothing after it but spaces.
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
TIMEOUT_S = 240  # a snippet that trains (docs/runner.md) compiles a smoke run


def snippets() -> list:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            name = f"{doc.relative_to(ROOT)}:{line}"
            found.append(pytest.param(match[1], id=name))
    return found


def test_the_extraction_sees_the_readme_blocks_and_skips_fragments():
    names = [p.id for p in snippets()]
    assert sum(name.startswith("README.md:") for name in names) >= 5
    fragment = "```python-fragment\nundefined_name\n```\n"
    assert not _BLOCK.findall(fragment)


@pytest.mark.parametrize("code", snippets())
def test_snippet_runs_as_written(code, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    script = tmp_path / "snippet.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, f"the snippet failed:\n{code}\n{done.stderr[-3000:]}"
