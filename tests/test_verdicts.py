"""The bench's rules in the report, on synthetic runs: gate, rates, seeds, budgets, baselines."""

import json
import shutil

import numpy as np
import pytest
from test_reporting import fake_results, parse_tables

from pe_jax.reporting import accuracy_figure, judge, load_runs, write_report
from pe_jax.reporting._format import below
from pe_jax.reporting._verdicts import choose_rate
from pe_jax.runfiles import read_results, write_examples

LENGTHS = [1, 2, 3, 4, 6, 8, 12, 16]  # train max 4: OOD = 6..16
TRAIN_MAX = 4
SAMPLES = 64


def baselines(lengths=LENGTHS, input_blind=0.05):
    n = len(lengths)
    rule = lambda em, tok: {  # noqa: E731
        "exact_match": [em] * n,
        "token_accuracy": [tok] * n,
        "exact_match_se": [0.0] * n,
        "token_accuracy_se": [0.0] * n,
    }
    return {
        "lengths": list(lengths),
        "samples": 256,
        "answer_tokens": 2,
        "uniform": rule(0.01, 0.5),
        "majority": rule(0.02, 0.55),
        "input_blind": rule(input_blind, 0.6),
    }


def write_run(
    root, task, encoding, em_models, *, extra=None, examples=True, seed=0, protocol="decoder"
):
    """A run whose per-example exact match has, per model and length, the given rates.

    em_models: [M, n] exact-match rates; each example is drawn right with that probability
    (fixed draws, so two runs built from the same rates have the same per-example scores).
    """
    rng = np.random.default_rng(seed)
    rates = np.asarray(em_models, np.float64)
    ex = rng.uniform(size=(*rates.shape, SAMPLES)) < rates[..., None]  # [M, n, E]
    tok = np.where(ex, 1.0, 0.5).astype(np.float32)
    acc = np.sqrt(ex.mean(-1))  # fake_results stores EM = acc**2
    data = fake_results(
        encoding, acc=acc, lengths=LENGTHS, train_max=TRAIN_MAX, seeds=range(len(rates)),
        task=task, protocol=protocol,
    )  # fmt: skip
    data["metrics"]["exact_match"] = ex.mean(-1).tolist()
    data["metrics"]["token_accuracy"] = tok.mean(-1).astype(np.float64).tolist()
    data.update(extra or {})
    path = root / task / encoding
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(data))
    if examples:
        write_examples(path, lengths=LENGTHS, exact_match=ex, token_accuracy=tok, eval_seed=0)
    read_results(path)  # a valid file
    return path


def curve(ood, *, ind=1.0):
    """EM rates over LENGTHS: `ind` up to the training length, then `ood`."""
    return [ind if t <= TRAIN_MAX else ood for t in LENGTHS]


def report(root):
    paths = write_report(root, log=lambda _: None)
    return paths["report"].read_text(), paths


def _claims(findings: str) -> list[str]:
    return [line for line in findings.splitlines() if " > " in line and "published" not in line]


def test_a_planted_difference_is_ordered_at_five_seeds_and_never_at_three(tmp_path):
    extra = {"baselines": baselines()}
    write_run(tmp_path, "copy", "none", [curve(0.95)] * 5, seed=1, extra=extra)
    write_run(tmp_path, "copy", "rope", [curve(0.05)] * 5, seed=2)
    write_run(tmp_path, "reverse", "none", [curve(0.95)] * 3, seed=3, extra=extra)
    write_run(tmp_path, "reverse", "rope", [curve(0.05)] * 3, seed=4)
    write_run(tmp_path, "sort", "none", [curve(0.5)] * 5, seed=5, extra=extra)
    write_run(tmp_path, "sort", "rope", [curve(0.5)] * 5, seed=6)  # same rate, new draws
    text, paths = report(tmp_path)
    findings = paths["findings"].read_text()
    (claim,) = _claims(findings)
    assert claim.startswith("- none > rope on copy: OOD EM 0.9")
    assert "paired t over 5 seeds, Holm-adjusted p < 0.001 (1 pair)" in claim
    assert "reverse: no ordering among the 1 pairs of learned encodings (too few seeds)" in findings
    assert findings.split("\n", 1)[1] in text  # report.md holds the same findings
    tables = parse_tables(text)
    copy = tables["Comparisons (copy)"][0]
    assert copy["ordering"] == "none > rope" and copy["test"] == "paired t"
    assert copy["seeds A, B"] == "5, 5"
    low, high = copy["diff A − B [95% CI]"].split("[")[1].rstrip("]").split(",")
    assert 0 < float(low) < float(high) <= 1
    reverse = tables["Comparisons (reverse)"][0]
    assert reverse["ordering"].startswith("no claim: too few seeds (3 and 3")
    assert tables["Comparisons (sort)"][0]["ordering"].startswith("no claim: adjusted p")


def test_the_gate_reads_the_whole_training_range_in_the_protocols_metric(tmp_path):
    # Decoder: EM 0.5 at T=1 only; the longest lengths pass, the pooled test does not.
    short_miss = [[0.5, 1, 1, 1, 0.9, 0.9, 0.9, 0.9]] * 5
    write_run(tmp_path, "copy", "sinusoidal", short_miss, seed=1)
    write_run(tmp_path, "copy", "none", [curve(0.9)] * 5, seed=2)
    # Encoder (the randomized_rope-on-sort case): exact match 0.9 in distribution, per-token
    # accuracy 0.997. The protocol's metric is per-token accuracy: learned.
    path = write_run(tmp_path, "sort", "rope", [curve(0.1)] * 5, protocol="encoder", seed=3)
    data = json.loads((path / "results.json").read_text())
    inside = np.asarray(LENGTHS) <= TRAIN_MAX
    for name, value in (("exact_match", 0.9), ("token_accuracy", 0.997)):
        values = np.asarray(data["metrics"][name])
        values[:, inside] = value
        data["metrics"][name] = values.tolist()
    (path / "results.json").write_text(json.dumps(data))
    text, paths = report(tmp_path)
    copy = {r["encoding"]: r for r in parse_tables(text)["copy"]}
    assert copy["sinusoidal"]["gate"] == "✗ not learned (0/5)"
    assert copy["none"]["gate"] == "5/5"
    findings = paths["findings"].read_text()
    assert "EM >= 0.95 pooled over T <= 4 and at T=2,3,4" in findings
    sort_row = parse_tables(text)["sort"][0]
    assert sort_row["gate"] == "5/5"
    assert "tok. acc. >= 0.99 pooled over T <= 4" in findings
    # The sensitivity line names what changes under the other metric's gate.
    assert "## Gate sensitivity" in text
    assert "sort, under a gate of EM >= 0.95: rope learned ✗ not learned (0/5) (now 5/5)" in text


def test_fixed_budgets_and_steps_to_gate_are_reported_and_survive_the_csv(tmp_path):
    steps = {"steps_trained": [300, 500, 800, 800, 800], "until": 0.99}
    write_run(tmp_path, "copy", "none", [curve(0.9)] * 5, seed=1, extra=steps)
    fixed = {"steps_trained": [100] * 5, "until": None}
    path = write_run(tmp_path, "copy", "rope", [curve(0.1)] * 5, seed=2, extra=fixed)
    gate = lambda step, em: {"step": step, "event": "gate", "gate": {"exact_match": em}}  # noqa: E731
    records = [gate(50, [0.2, 0.97, 0.2, 0.2, 0.99]), gate(100, [0.96, 0.99, 0.2, 1.0, 1.0])]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    text, paths = report(tmp_path)
    assert "none 300–800 steps (to criterion, cap 100; budgets differ)" in text
    assert "rope 100 steps (fixed budget)" in text
    findings = paths["findings"].read_text()
    line = next(x for x in findings.splitlines() if x.startswith("- rope on copy"))
    # First passing gate step per model: 100, 50, never, 100, 50 -> median of 4 is 75.
    assert "steps-to-gate (trainer's gate, longest lengths) median 75 (4/5 reached it)" in line
    before = paths["findings"].read_text()
    for enc in ("none", "rope"):  # the run folders are gone; the report's CSV remains
        shutil.rmtree(tmp_path / "copy" / enc)
    assert report(tmp_path)[1]["findings"].read_text() == before


def test_not_learned_runs_are_left_out_and_gains_average_with_an_interval(tmp_path):
    write_run(tmp_path, "copy", "rope", [curve(0.99, ind=0.5)] * 5, seed=1)
    write_run(tmp_path, "copy", "randomized_rope", [curve(0.2)] * 5, seed=2)
    write_run(tmp_path, "reverse", "rope", [curve(0.1)] * 5, seed=3)
    write_run(tmp_path, "reverse", "randomized_rope", [curve(0.9)] * 5, seed=4)
    text, paths = report(tmp_path)
    copy = {r["encoding"]: r for r in parse_tables(text)["copy"]}
    assert copy["rope"]["gate"] == "✗ not learned (0/5)"
    assert not copy["rope"]["EM OOD % (mean ± sd)"].startswith("**")
    assert "No comparison" in text.split("### Comparisons (copy)")[1]
    findings = paths["findings"].read_text()
    line = next(x for x in findings.splitlines() if x.startswith("- rope on copy"))
    closest = float(line.split("closest model's gate score ")[1].split(";")[0])
    assert 0.4 < closest < 0.95 and "descriptive only" in line
    gains = {r["task"]: r for r in parse_tables(text)["Gains"]}
    assert gains["copy"]["status"] == "rope not learned"
    assert gains["reverse"]["status"] == "both learned"
    mean_line = next(x for x in findings.splitlines() if "mean gain" in x)
    mean = float(mean_line.split("mean gain in OOD EM ")[1].split()[0])
    assert mean == pytest.approx(0.8, abs=0.05)  # reverse alone
    low, high = (float(x) for x in mean_line.split("[")[1].split("]")[0].split(","))
    assert low < mean < high and "over 1 task(s) where both are learned (reverse)" in mean_line
    # The plot draws a not-learned run as one faded line, never as a mean of learned ones.
    fig = accuracy_figure(load_runs(tmp_path))
    gids = [line.get_gid() for ax in fig.axes for line in ax.lines]
    assert "model:rope" in gids  # reverse
    copy_ax = next(ax for ax in fig.axes if ax.get_title().startswith("copy"))
    copy_lines = {line.get_gid(): line for line in copy_ax.lines}
    assert "model:rope" not in copy_lines
    assert copy_lines["not_learned:rope"].get_alpha() < 0.5


def test_baselines_are_table_rows_and_distinct_dashed_lines(tmp_path):
    write_run(tmp_path, "copy", "none", [curve(0.9)] * 2, extra={"baselines": baselines()})
    text, _ = report(tmp_path)
    rows = {r["encoding"]: r for r in parse_tables(text)["copy"]}
    for title, em, tok in (("uniform", 1.0, 50.0), ("majority", 2.0, 55.0),
                           ("input-blind", 5.0, 60.0)):  # fmt: skip
        row = rows[f"baseline: {title}"]
        assert float(row["EM in-dist. %"]) == em and float(row["tok. in-dist. %"]) == tok
    for metric in ("exact_match", "token_accuracy"):
        lines = accuracy_figure(load_runs(tmp_path), metric=metric).axes[0].lines
        dashed = {line.get_gid() for line in lines if line.get_linestyle() == "--"}
        assert dashed == {"baseline:uniform", "baseline:majority", "baseline:input_blind"}
        assert len({str(line._dash_pattern) for line in lines if line.get_gid() in dashed}) == 3
        base = next(line for line in lines if line.get_gid() == "baseline:input_blind")
        np.testing.assert_allclose(base.get_ydata(), baselines()["input_blind"][metric])


def test_learning_rate_rule_never_reads_ood_and_breaks_ties_on_purpose(tmp_path):
    low = [curve(0.1)] * 2
    high = [[1.0, 1.0, 0.96, 0.96, 0.9, 0.9, 0.9, 0.9]] * 2  # worse in distribution, better OOD
    models = [{"seed": s, "learning_rate": r} for r in (1e-3, 1e-2) for s in (0, 1)]
    write_run(tmp_path / "a", "copy", "rope", low + high, extra={"models": models, "seeds": [0, 1]})
    verdict = judge(load_runs(tmp_path / "a"))["copy"].runs[0]
    assert verdict.rates == (1e-3, 1e-2) and verdict.chosen_rate == 1e-3
    text, _ = report(tmp_path / "a")
    assert [r["learning rate"] for r in parse_tables(text)["Learning rates (copy)"]
            if r["chosen"] == "✓"] == ["0.001"]  # fmt: skip
    # Ties: equal validation -> more learned models; then the smaller rate.
    assert choose_rate((1e-3, 1e-2), [0.9, 0.9], [1, 2]) == 1e-2
    assert choose_rate((1e-3, 1e-2), [0.9, 0.9], [2, 2]) == 1e-3
    assert choose_rate((1e-3, 1e-2), [0.8, 0.9], [2, 0]) == 1e-2


def test_above_the_baseline_only_when_the_lower_bound_is_above_it(tmp_path):
    extra = {"baselines": baselines(input_blind=0.05)}
    # OOD EM around 0.06 with a wide spread over 5 seeds: the point is above 0.05, the
    # interval is not.
    spread = [curve(x) for x in (0.0, 0.0, 0.3, 0.0, 0.0)]
    write_run(tmp_path, "copy", "rope", spread, extra=extra, seed=1)
    _, paths = report(tmp_path)
    line = next(x for x in paths["findings"].read_text().splitlines() if "rope on copy:" in x)
    mean = float(line.split("OOD EM ")[1].split()[0])
    assert mean > 0.05 and "not above the input-blind baseline" in line


def test_a_results_csv_reports_as_its_runs_did(tmp_path):
    extra = {"baselines": baselines(), "steps_trained": [100] * 5, "until": None,
             "cpu_seconds_per_step": 0.25, "schema_version": 3}  # fmt: skip
    write_run(tmp_path, "copy", "none", [curve(0.9)] * 5, seed=1, extra=extra)
    write_run(tmp_path, "copy", "rope", [curve(0.2)] * 5, seed=2, extra=extra)
    _, paths = report(tmp_path)
    before = paths["findings"].read_text()
    for enc in ("none", "rope"):  # the run folders are gone; the report's CSV remains
        shutil.rmtree(tmp_path / "copy" / enc)
    runs = load_runs(tmp_path)
    assert [r.encoding for r in runs] == ["none", "rope"]
    assert runs[0].results.steps_trained == [100] * 5 and runs[0].results.until is None
    assert runs[0].results.cpu_seconds_per_step == 0.25
    _, again = report(tmp_path)
    assert again["findings"].read_text() == before


def test_old_results_without_new_fields_still_report(tmp_path):
    for enc, ood in (("none", 0.9), ("alibi", 0.3)):
        write_run(tmp_path, "copy", enc, [curve(ood)] * 3, examples=False, seed=7)
    data = json.loads((tmp_path / "copy" / "none" / "results.json").read_text())
    assert not {"baselines", "learned", "models", "gate", "schema_version"} & set(data)
    text, paths = report(tmp_path)
    assert "## Findings" in text and "no baselines recorded" in text
    assert paths["csv"].exists() and paths["accuracy_plot"].exists()


def test_near_misses_never_read_as_passing():
    assert below(0.5, 0.99) == "0.50" and below(0.896, 0.9) == "0.896"
    assert below(0.98958, 0.99) == "0.9896"
    assert below(0.9999999, 1.0) == "0.999999"  # never rounds up to the threshold
