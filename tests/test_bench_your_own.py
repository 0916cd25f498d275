"""docs/bench_your_own.md as written: its encoding module, outside the package, benched beside
RoPE through the command line by two worker processes (the imports travel with each run)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bench_your_own.md"


def _snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_docs_encoding_trains_beside_rope_in_a_sweep(tmp_path):
    (tmp_path / "my_encoding.py").write_text(_snippets()[0])
    config = "compare:smoke,seeds=0,steps=5,imports=my_encoding.py,encodings=my_bias;rope"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.sweep", f"--config={config}", "--workdir=runs"]
        + ["--workers=2"],
        cwd=tmp_path,  # the module path and the config name resolve from here
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for encoding in ("my_bias", "rope"):
        results = json.loads((tmp_path / "runs" / "copy" / encoding / "results.json").read_text())
        assert results["encoding"] == encoding and results["lengths"] == [1, 2, 4, 8]
        assert results["config"]["imports"] == ["my_encoding.py"]
    assert "my_bias" in (tmp_path / "runs" / "report.md").read_text()


def test_the_docs_task_mirrors_its_input(tmp_path, monkeypatch):
    import jax
    import numpy as np

    from pe_jax.tasks import _registry, get_task, list_tasks

    monkeypatch.setattr(_registry, "_TASKS", dict(_registry._TASKS))  # forgotten afterwards
    namespace = {"__name__": "my_task"}
    exec(compile(_snippets()[1], "my_task.py", "exec"), namespace)
    assert "mirror" in list_tasks()
    task = get_task("mirror", num_symbols=3)
    lengths = np.array([1, 3, 4])
    batch = task.sample(jax.random.key(0), batch_size=3, length=lengths, layout="encoder", width=16)
    inputs, targets, mask = (np.asarray(a) for a in (batch.inputs, batch.targets, batch.loss_mask))
    for row, length in enumerate(lengths):
        x = inputs[row, :length]
        assert list(targets[row][mask[row]]) == list(x) + list(x[::-1])
