"""The entry points: a user's error is one line with its close matches and exit code 2 (no
traceback), a bug keeps its traceback; configs by name from any directory, without JAX."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, cwd=ROOT, module=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", *args] if module else [sys.executable, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _usage_error(result, *expected):
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0], out
    for text in expected:
        assert text in lines[0], out
    return lines[0]


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--config=copy:smoke", "--config.model.encoding=rop"], ["'rop'", "Did you mean 'rope'"]),
        (["--config=configs/cpy.py"], ["'configs/cpy.py'", "Did you mean 'configs/copy.py'"]),
        (["--config=copy:smoke", "--config.model.widht=3"], ["widht", "Did you mean 'width'"]),
        (["--config=copy:smoke,model.widht=3"], ["widht", "Did you mean 'width'"]),
        (
            ["--config=copy:smoke", "--config.model.encoding_options.bsae=500"],
            ["'bsae'", "Did you mean 'base'"],
        ),
        (["--config=copy:smoke", "--config.task=cpy"], ["'cpy'", "Did you mean 'copy'"]),
    ],
)
def test_train_user_errors(tmp_path, flags, expected):
    result = _run("experiments.train", *flags, f"--workdir={tmp_path / 'run'}")
    _usage_error(result, *expected)
    assert not (tmp_path / "run").exists()  # checked before anything is written


def test_train_bug_keeps_its_traceback(tmp_path):
    config = tmp_path / "broken.py"
    config.write_text("def get_config(arg=None):\n    return undefined_name\n")
    result = _run("experiments.train", f"--config={config}", f"--workdir={tmp_path / 'run'}")
    assert result.returncode not in (0, 2) and "NameError" in result.stderr
    assert "Traceback" in result.stderr


def test_sweep_user_errors(tmp_path):
    result = _run(
        "experiments.sweep",
        "--config=configs/sweeps/smoke.py",
        "--only=copy/alibii",
        f"--workdir={tmp_path / 'sweep'}",
    )
    _usage_error(result, "--only=copy/alibii", "Did you mean 'copy/alibi'")
    assert not (tmp_path / "sweep").exists()
    (tmp_path / "quick").mkdir()
    result = _run("experiments.sweep", "report", f"--workdir={tmp_path / 'quik'}")
    _usage_error(result, "is not a folder", f"Did you mean '{tmp_path / 'quick'}'")


def test_visualize_and_benchmark_user_errors(tmp_path):
    result = _run("experiments.visualize", f"--out={tmp_path}", "--only=ladr")
    _usage_error(result, "'ladr'", "Did you mean 'ladder'")
    result = _run("experiments.benchmark", "--sections=flors", f"--out={tmp_path / 'b.json'}")
    _usage_error(result, "'flors'", "Did you mean 'floors'")


def test_configs_load_by_name_from_any_directory_without_jax(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from pe_jax.config_files import load_config
        import configs.base, configs.sweeps.compare
        a = load_config("copy:smoke,model.encoding_options.base=500")
        b = load_config("configs/copy.py:smoke")
        sweep = load_config("smoke")
        assert a.model.encoding_options.base == 500 and b.model.width == a.model.width == 16
        assert sweep.name == "smoke sweep", sweep.name
        assert "jax" not in sys.modules, sorted(m for m in sys.modules if "jax" in m)
        print("ok")
        """
    )
    result = _run("-c", script, cwd=tmp_path, module=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
