"""The sweep driver on the smoke sweep: subsets, resume without retraining, the CLI, bad input."""

import json
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
from matplotlib.image import imread
from test_reporting import check_report_against_results

from configs.sweeps.smoke import get_config
from pe_jax.reporting import load_runs, write_report
from pe_jax.reporting._plots import figure_pixels
from pe_jax.sweep import expand_sweep, run_sweep, select_runs


def _mtimes(workdir):
    return {p.relative_to(workdir): p.stat().st_mtime_ns for p in workdir.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """--only=*/none, then the whole sweep, then the whole sweep again through the CLI."""
    workdir = tmp_path_factory.mktemp("sweep")
    logs = []
    config = get_config()
    first = run_sweep(config, workdir, only="*/none", log=logs.append)
    alibi_after_first = (workdir / "copy" / "alibi").exists()
    second = run_sweep(config, workdir, log=logs.append)
    write_report(workdir, log=logs.append)
    results_files = sorted(workdir.rglob("results.json"))
    before = {p: p.stat().st_mtime_ns for p in results_files}
    checkpoints_before = _mtimes(workdir / "copy")
    cli = subprocess.run(
        [sys.executable, "-m", "experiments.sweep", "--config=configs/sweeps/smoke.py"]
        + [f"--workdir={workdir}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(
        workdir=workdir,
        config=config,
        first=first,
        second=second,
        alibi_after_first=alibi_after_first,
        logs=logs,
        cli=cli.stdout + cli.stderr,
        results_mtimes=(before, {p: p.stat().st_mtime_ns for p in results_files}),
        run_mtimes=(checkpoints_before, _mtimes(workdir / "copy")),
    )


def test_only_runs_the_selected_subset(sweep):
    assert sweep["first"]["trained"] == ["copy/none"]
    assert sweep["first"]["skipped"] == []
    assert not sweep["alibi_after_first"]


def test_rerun_trains_only_what_is_missing_then_nothing(sweep):
    assert sweep["second"]["trained"] == ["copy/alibi"]
    assert sweep["second"]["skipped"] == ["copy/none"]
    assert "0 trained, 2 skipped, 0 failed" in sweep["cli"]
    before, after = sweep["results_mtimes"]
    assert before == after and len(before) == 2
    # No checkpoint, log or config file of a run was touched by the third invocation.
    assert sweep["run_mtimes"][0] == sweep["run_mtimes"][1]


def test_progress_reports_runs_done_of_total_and_eta(sweep):
    text = "\n".join(sweep["logs"])
    assert "[1/1] copy/none: training (1 to train, ETA unknown)" in text
    assert "[2/2] copy/alibi: training" in text
    assert "1 finished earlier (skipped), 1 to train" in text


def test_each_run_lies_in_its_folder_with_its_encoding_and_all_seeds(sweep):
    runs = load_runs(sweep["workdir"])
    assert [(r.task, r.encoding, r.encoding_name) for r in runs] == [
        ("copy", "none", "none"),
        ("copy", "alibi", "alibi"),
    ]
    for run in runs:
        assert run.seeds == [0, 1]
        assert run.results.steps == 20
        assert run.results.num_compilations["train_step"] == 1  # seeds in one program


def test_report_of_the_smoke_sweep_matches_its_results(sweep):
    workdir = sweep["workdir"]
    runs = load_runs(workdir)
    text = (workdir / "report.md").read_text()
    check_report_against_results(text, runs)
    lines = (workdir / "results.csv").read_text().splitlines()
    # header + encodings x seeds x lengths + baseline rules x lengths
    assert len(lines) == 1 + 2 * 2 * 4 + 3 * 4
    for run in runs:  # evaluation kept every example's score and the task's baselines
        examples = run.examples
        assert examples["exact_match"].shape == (2, 4, run.results.config["eval"]["samples"])
        np.testing.assert_allclose(
            examples["exact_match"].mean(-1), run.metric("exact_match"), atol=1e-6
        )
        np.testing.assert_allclose(
            examples["token_accuracy"].mean(-1), run.metric("token_accuracy"), atol=1e-5
        )
        assert run.baselines["lengths"] == run.results.lengths
    assert "baseline: input-blind" in text and "## Findings" in text
    for png in ("accuracy_vs_length.png", "ood_vs_cost.png"):
        assert imread(workdir / png).shape[:2] == figure_pixels(1, 2)


def test_manifest_lists_every_planned_run(sweep):
    manifest = json.loads((sweep["workdir"] / "sweep.json").read_text())
    assert manifest["runs"] == ["copy/none", "copy/alibi"]
    assert manifest["encodings"] == ["none", "alibi"]
    assert manifest["seeds"] == [0, 1]


def test_expand_applies_overrides_options_and_seeds():
    config = get_config()
    config.encodings = [
        dict(label="rope_quarter", name="rope", options=dict(rotary_fraction=0.25)),
        dict(label="fast", name="alibi", overrides={"train": {"learning_rate": 0.01}}),
    ]
    config.seeds = (3, 4, 5)
    config.overrides = ml_collections.ConfigDict({"model": {"width": 24}, "train": {"steps": 7}})
    runs = expand_sweep(config)
    assert [r.name for r in runs] == ["copy/rope_quarter", "copy/fast"]
    rope, fast = (r.config for r in runs)
    assert rope.model.encoding == "rope" and rope.model.encoding_options.rotary_fraction == 0.25
    assert rope.seeds == (3, 4, 5) and rope.model.width == 24 and rope.train.steps == 7
    assert fast.train.learning_rate == 0.01 and rope.train.learning_rate == 0.001
    assert fast.model.encoding_options.to_dict() == {}
    # The task's own config is a template: expanding does not change it.
    assert config.tasks[0]["config"].model.width == 16


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda c: c.encodings.append(dict(label="none", name="rope")), "unique"),
        (lambda c: c.encodings.append(dict(label="a/b", name="rope")), r"encodings\[2\].label"),
        (lambda c: c.overrides.train.update({"stepz": 3}), r"sweep.overrides.train.stepz"),
        (lambda c: setattr(c, "seeds", ()), "sweep.seeds"),
        (lambda c: c.tasks.append(dict(label="x", config={})), r"tasks\[1\].config"),
    ],
)
def test_bad_sweep_config_names_the_field(change, match):
    config = get_config()
    change(config)
    with pytest.raises(ValueError, match=match):
        expand_sweep(config)


def test_only_patterns_and_typos():
    runs = expand_sweep(get_config())
    assert [r.name for r in select_runs(runs, "alibi")] == ["copy/alibi"]
    assert [r.name for r in select_runs(runs, "copy")] == ["copy/none", "copy/alibi"]
    assert [r.name for r in select_runs(runs, ["*/n*", ""])] == ["copy/none"]
    with pytest.raises(ValueError, match="only: pattern 'rop' matches no run"):
        select_runs(runs, "rop")


def test_changed_config_is_refused_before_training(sweep):
    config = get_config()
    config.overrides.train.steps = 21
    with pytest.raises(ValueError, match="different config"):
        run_sweep(config, sweep["workdir"], log=lambda _: None)
    assert sweep["results_mtimes"][1] == {
        p: p.stat().st_mtime_ns for p in sweep["results_mtimes"][1]
    }
