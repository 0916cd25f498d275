"""The bench's rules in the report, on synthetic runs: gate, lr choice, findings, baselines."""

import json

import numpy as np
import pytest
from test_reporting import fake_results, parse_tables

from pe_jax.reporting import accuracy_figure, judge, load_runs, write_report
from pe_jax.reporting._format import below
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


def write_run(root, task, encoding, em_models, *, extra=None, examples=True, seed=0):
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
        task=task,
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


def test_planted_difference_yields_an_ordering_and_none_where_none(tmp_path):
    good, bad = [curve(0.95)] * 3, [curve(0.05)] * 3
    write_run(tmp_path, "copy", "none", good, seed=1, extra={"baselines": baselines()})
    write_run(tmp_path, "copy", "rope", bad, seed=2)
    write_run(tmp_path, "reverse", "none", [curve(0.5)] * 3, seed=3)
    write_run(tmp_path, "reverse", "rope", [curve(0.5)] * 3, seed=4)  # same rate, new draws
    text, paths = report(tmp_path)
    findings = paths["findings"].read_text()
    claims = [line for line in findings.splitlines() if " > " in line]
    assert len(claims) == 1
    assert claims[0].startswith("- none > rope on copy: OOD EM 0.9")
    diff = float(claims[0].split("paired diff ")[1].split()[0])
    assert diff == pytest.approx(0.9, abs=0.05) and claims[0].endswith(", 3 seeds")
    assert "reverse: no ordering among the 2 learned encodings" in findings
    assert findings.split("\n", 1)[1] in text  # report.md holds the same findings
    rows = parse_tables(text)["Paired comparisons (copy)"]
    assert (
        rows[0]["ordering"] == "none > rope"
        and rows[0]["paired on"] == f"{4 * SAMPLES} examples"  # 4 OOD lengths
    )
    low, high = rows[0]["paired diff A − B [95% CI]"].split("[")[1].rstrip("]").split(",")
    assert float(low) > 0 and float(high) <= 1
    assert parse_tables(text)["Paired comparisons (reverse)"][0]["ordering"] == "no claim"


def test_not_learned_run_is_marked_and_left_out_of_orderings_and_aggregates(tmp_path):
    # copy: rope misses the gate (EM 0.5 at T=4) but scores high OOD; randomized_rope learned.
    write_run(tmp_path, "copy", "rope", [curve(0.99, ind=0.5)] * 3, seed=1)
    write_run(tmp_path, "copy", "randomized_rope", [curve(0.2)] * 3, seed=2)
    # reverse: both learned, randomized_rope better.
    write_run(tmp_path, "reverse", "rope", [curve(0.1)] * 3, seed=3)
    write_run(tmp_path, "reverse", "randomized_rope", [curve(0.9)] * 3, seed=4)
    text, paths = report(tmp_path)
    copy = {r["encoding"]: r for r in parse_tables(text)["copy"]}
    assert copy["rope"]["gate"] == "✗ not learned (0/3)"
    assert copy["randomized_rope"]["gate"] == "3/3"
    # rope has the higher OOD mean, but only learned runs compete for bold.
    assert not copy["rope"]["EM OOD % (mean ± sd)"].startswith("**")
    assert copy["randomized_rope"]["EM OOD % (mean ± sd)"].startswith("**")
    assert "No paired comparison" in text.split("### Paired comparisons (copy)")[1]
    findings = paths["findings"].read_text()
    assert "rope on copy: not learned (0/3 models pass EM >= 0.99 at T=4)" in findings
    # Its scores are shown beside the input-blind baseline, as description, never ranked.
    line = next(x for x in findings.splitlines() if x.startswith("- rope on copy"))
    closest = float(line.split("closest model's validation EM ")[1].split(";")[0])
    assert 0.4 < closest < 0.99  # the curve's in-distribution EM, 0.5 up to sampling
    assert "OOD EM 0.99" in line and "descriptive only" in line
    assert not [line for line in findings.splitlines() if " > " in line and "copy" in line]
    gains = {r["task"]: r for r in parse_tables(text)["Gains"]}
    assert gains["copy"]["status"] == "rope not learned"
    assert gains["copy"]["gain in OOD EM [95% CI]"] == "—"
    assert gains["reverse"]["status"] == "both learned"
    mean = float(text.split("vs rope: mean gain ")[1].split()[0])
    assert mean == pytest.approx(0.8, abs=0.05)  # reverse alone, not the copy gain
    # findings.md carries the same mean, so a page quoting it has the aggregate too
    assert (
        f"- randomized_rope vs rope: mean gain {mean:+.2f} over 1 task(s) where both are "
        "learned (reverse)." in findings
    )
    assert "over 1 task(s) where both are learned (reverse)" in text
    # The plot draws a not-learned run as one faded line, never as a mean of learned ones.
    fig = accuracy_figure(load_runs(tmp_path))
    gids = [line.get_gid() for ax in fig.axes for line in ax.lines]
    assert "model:rope" in gids  # reverse
    copy_ax = next(ax for ax in fig.axes if ax.get_title().startswith("copy"))
    copy_lines = {line.get_gid(): line for line in copy_ax.lines}
    assert "model:rope" not in copy_lines
    assert copy_lines["not_learned:rope"].get_alpha() < 0.5


def test_gate_recorded_by_the_trainer_overrides_the_computed_one(tmp_path):
    extra = {"learned": [True, False, False], "gate": {"threshold": 0.9, "lengths": [4]}}
    write_run(tmp_path, "copy", "none", [curve(0.9)] * 3, extra=extra)
    text, _ = report(tmp_path)
    assert parse_tables(text)["copy"][0]["gate"] == "1/3"
    assert "none on copy: learned by 1/3 models (the trainer's gate)" in text


def test_a_near_miss_never_reads_as_passing_the_gate(tmp_path):
    # The trainer's held-out EM 0.98958: two decimals would print 0.99, the gate itself.
    gate = {"threshold": 0.99, "lengths": [4], "exact_match": [0.98958, 0.95, 0.9]}
    extra = {"learned": [False] * 3, "gate": gate}
    write_run(tmp_path, "copy", "none", [curve(0.5)] * 3, extra=extra)
    _, paths = report(tmp_path)
    line = next(x for x in paths["findings"].read_text().splitlines() if "none on copy" in x)
    assert "not learned (0/3" in line and "closest model's validation EM 0.9896;" in line
    assert below(0.5, 0.99) == "0.50" and below(0.896, 0.9) == "0.896"
    assert below(0.9999999, 1.0) == "0.999999"  # never rounds up to the threshold


def test_baselines_are_table_rows_and_dashed_lines(tmp_path):
    write_run(tmp_path, "copy", "none", [curve(0.9)] * 2, extra={"baselines": baselines()})
    write_run(tmp_path, "copy", "randomized_none", [curve(0.8)] * 2, seed=5)
    text, _ = report(tmp_path)
    rows = {r["encoding"]: r for r in parse_tables(text)["copy"]}
    for title, em, tok in (("uniform", 1.0, 50.0), ("majority", 2.0, 55.0),
                           ("input-blind", 5.0, 60.0)):  # fmt: skip
        row = rows[f"baseline: {title}"]
        assert float(row["EM in-dist. %"]) == em and float(row["EM OOD % (mean ± sd)"]) == em
        assert float(row["tok. in-dist. %"]) == tok
        assert float(row["tok. OOD % (mean ± sd)"]) == tok
        assert row["T=8 (2x) EM / tok. %"] == f"{em:.1f} / {tok:.1f}"
    for metric in ("exact_match", "token_accuracy"):
        fig = accuracy_figure(load_runs(tmp_path), metric=metric)
        lines = fig.axes[0].lines
        dashed = {line.get_gid() for line in lines if line.get_linestyle() == "--"}
        assert dashed == {"baseline:uniform", "baseline:majority", "baseline:input_blind"}
        assert len({str(line._dash_pattern) for line in lines if line.get_gid() in dashed}) == 3
        base = next(line for line in lines if line.get_gid() == "baseline:input_blind")
        expected = baselines()["input_blind"][metric]
        np.testing.assert_allclose(base.get_ydata(), expected)
        # The randomized variant keeps its own (dash-dotted) style, apart from the baselines.
        variant = next(line for line in lines if line.get_gid() == "model:randomized_none")
        assert variant.get_linestyle() == "-."
    assert "above the input-blind baseline (input-blind 0.05, majority 0.02, uniform 0.01)" in text


def test_learning_rate_is_chosen_on_in_distribution_validation_not_ood(tmp_path):
    # Rate 1e-3: perfect in distribution, poor OOD. Rate 1e-2: worse in distribution (0.995
    # at the gate length; still learned), better OOD. Validation must pick 1e-3.
    low = [curve(0.1)] * 2
    high = [[1.0, 1.0, 1.0, 0.995, 0.9, 0.9, 0.9, 0.9]] * 2
    models = [{"seed": s, "learning_rate": r} for r in (1e-3, 1e-2) for s in (0, 1)]
    write_run(tmp_path, "copy", "rope", low + high, extra={"models": models, "seeds": [0, 1]})
    run = load_runs(tmp_path)[0]
    verdict = judge([run])["copy"].runs[0]
    assert verdict.rates == (1e-3, 1e-2) and verdict.chosen_rate == 1e-3
    text, _ = report(tmp_path)
    row = parse_tables(text)["copy"][0]
    assert row["lr"] == "0.001 (of 2)"
    ood_low = 100 * np.mean(run.metric("exact_match")[:2, 4:])
    assert float(row["EM OOD % (mean ± sd)"].split("±")[0].strip("* ")) == pytest.approx(
        ood_low, abs=0.051
    )
    grid = parse_tables(text)["Learning rates (copy)"]
    assert [r["learning rate"] for r in grid if r["chosen"] == "✓"] == ["0.001"]
    assert len(grid) == 2
    published = parse_tables(text)["Published aggregation (copy)"][0]
    best_ood = 100 * run.metric("exact_match")[:, 4:].mean(1).max()  # a 1e-2 model
    assert float(published["max OOD EM %"]) == pytest.approx(best_ood, abs=0.051)
    assert best_ood > ood_low + 50  # OOD would have chosen the other rate
    assert "Max over seeds and learning rates" in text
    assert "learning rate 0.001 chosen of [0.001, 0.01] on in-dist. validation" in text


def test_extrapolation_length_is_reported_with_its_ci(tmp_path):
    # Seed 0 holds EM >= 0.9 up to T=8 (2x), seed 1 up to T=16 (4x).
    seed0 = [1, 1, 1, 1, 1, 1, 0, 0]
    seed1 = [1, 1, 1, 1, 1, 1, 1, 1]
    write_run(tmp_path, "copy", "none", [seed0, seed1])
    text, _ = report(tmp_path)
    assert parse_tables(text)["copy"][0]["extrap. (x train) [95% CI]"] == "3.00x [2.00, 4.00]"
    assert "extrapolates to 3.00x [2.00, 4.00] the training length" in text


def test_task_that_no_encoding_learns_beyond_input_blind_is_kept_out(tmp_path):
    extra = {"baselines": baselines(input_blind=0.6)}
    write_run(tmp_path, "parity", "rope", [curve(0.5, ind=0.5)] * 3, extra=extra, seed=1)
    write_run(tmp_path, "parity", "randomized_rope", [curve(0.4, ind=0.5)] * 3, seed=2)
    text, paths = report(tmp_path)
    findings = paths["findings"].read_text()
    assert "parity: not learned at this scale — no encoding beats the input-blind baseline" in (
        findings
    )
    assert "**Not learned at this scale**" in text
    assert parse_tables(text)["Gains"][0]["status"] == "task not learned at this scale"
    assert not [line for line in findings.splitlines() if " > " in line]


def test_old_results_without_new_fields_still_report(tmp_path):
    for enc, ood in (("none", 0.9), ("alibi", 0.3)):
        write_run(tmp_path, "copy", enc, [curve(ood)] * 3, examples=False, seed=7)
    data = json.loads((tmp_path / "copy" / "none" / "results.json").read_text())
    assert not {"baselines", "learned", "models", "gate", "schema_version"} & set(data)
    text, paths = report(tmp_path)
    assert "## Findings" in text and "no baselines recorded" in text
    row = parse_tables(text)["copy"][0]
    assert row["extrap. (x train) [95% CI]"].endswith("]")
    comparison = parse_tables(text)["Paired comparisons (copy)"][0]
    assert comparison["paired on"] == "seed means"  # no examples.npz: per-seed means
    assert paths["csv"].exists() and paths["accuracy_plot"].exists()
