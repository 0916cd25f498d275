"""Published orderings judged against our runs: reproduced, contradicted, cannot tell."""

import json
import re

import pytest
from test_verdicts import baselines, curve, write_run

from pe_jax.reporting import judge, load_runs, write_report
from pe_jax.reporting._published import expand_published, judge_published

CLAIMS = [
    {"better": "none", "worse": "rope", "tasks": ["*"], "source": "Paper A"},
    {"better": "rope", "worse": "alibi", "tasks": ["copy"], "source": "Paper B"},
    {"better": "none", "worse": "t5", "tasks": ["copy"], "source": "Paper A"},
    {"better": "none", "worse": "rope", "tasks": ["parity"], "source": "Paper C"},
]


def _sweep(tmp_path):
    extra = {"baselines": baselines()}
    write_run(tmp_path, "copy", "none", [curve(0.95)] * 3, seed=1, extra=extra)
    write_run(tmp_path, "copy", "rope", [curve(0.05)] * 3, seed=2, extra=extra)
    write_run(tmp_path, "copy", "alibi", [curve(0.9)] * 3, seed=3, extra=extra)
    write_run(tmp_path, "reverse", "none", [curve(0.5)] * 3, seed=4, extra=extra)
    write_run(tmp_path, "reverse", "rope", [curve(0.5)] * 3, seed=5, extra=extra)
    unlearned = [[0.1] * len(curve(0.0))] * 3  # fails the gate at every length
    write_run(tmp_path, "reverse", "alibi", unlearned, seed=6, extra=extra)
    return judge(load_runs(tmp_path))


def _diff(evidence: str, pair: str) -> float:
    match = re.match(
        rf"paired diff {pair} in OOD EM (-?[0-9.]+) \[(-?[0-9.]+), (-?[0-9.]+)\]", evidence
    )
    assert match, evidence
    diff, low, high = map(float, match.groups())
    assert low <= diff <= high and (low > 0 or high < 0)  # the interval excludes zero
    return diff


def test_each_verdict_follows_the_paired_interval(tmp_path):
    tasks = _sweep(tmp_path)
    claims = expand_published(CLAIMS, list(tasks))
    got = {(c.task, c.better, c.worse): judge_published(c, tasks.get(c.task)) for c in claims}
    assert got[("copy", "none", "rope")][0] == "reproduced"
    assert _diff(got[("copy", "none", "rope")][1], "none − rope") > 0.8
    assert got[("copy", "rope", "alibi")][0] == "contradicted"
    assert _diff(got[("copy", "rope", "alibi")][1], "rope − alibi") < -0.7
    assert got[("reverse", "none", "rope")][0] == "cannot tell"
    assert "includes zero" in got[("reverse", "none", "rope")][1]
    assert got[("copy", "none", "t5")] == ("cannot tell", "t5 not run")
    assert got[("parity", "none", "rope")] == ("cannot tell", "task not run")


def test_a_claim_on_an_unlearned_model_cannot_be_told(tmp_path):
    tasks = _sweep(tmp_path)
    (claim,) = expand_published(
        [{"better": "alibi", "worse": "none", "tasks": ["reverse"], "source": "S"}], list(tasks)
    )
    assert judge_published(claim, tasks["reverse"]) == (
        "cannot tell",
        "alibi not learned (gate)",
    )


def test_star_expands_to_every_task_and_bad_entries_are_named():
    claims = expand_published(CLAIMS[:1], ["copy", "reverse"])
    assert [(c.task, c.source) for c in claims] == [("copy", "Paper A"), ("reverse", "Paper A")]
    with pytest.raises(ValueError, match=r"published\[0\] lacks \['source'\]"):
        expand_published([{"better": "a", "worse": "b", "tasks": ["*"]}], ["copy"])


def test_the_report_writes_the_verdicts_from_the_manifest(tmp_path):
    _sweep(tmp_path)
    manifest = {"name": "t", "runs": [], "sweep_config": {"published": CLAIMS}}
    (tmp_path / "sweep.json").write_text(json.dumps(manifest))
    paths = write_report(tmp_path, log=lambda _: None)
    findings = paths["findings"].read_text()
    assert "- published none > rope on copy (Paper A): reproduced — paired diff" in findings
    assert "- published rope > alibi on copy (Paper B): contradicted — paired diff" in findings
    assert "published orderings: 1 reproduced, 1 contradicted, 3 cannot tell of 5." in findings
    assert "published rope > alibi on copy (Paper B): contradicted" in paths["report"].read_text()
