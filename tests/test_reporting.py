"""Reports from hand-made results.json files: every number recomputed, plots decoded, the CLI."""

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread

from pe_jax.reporting import load_runs, write_report
from pe_jax.reporting._plots import figure_pixels
from pe_jax.reporting._results import nearest_length


def fake_results(encoding, *, acc, lengths, train_max, seeds=(0, 1), protocol="encoder", time=0.01,
                 params=1000, options=None, task="copy"):  # fmt: skip
    """A results.json as train_and_evaluate writes it, with the given accuracy [S, n]."""
    acc = np.asarray(acc, np.float64)
    lengths = np.asarray(lengths)
    metrics = {"token_accuracy": acc, "exact_match": acc**2, "loss": 1 - acc}
    ind, ood = lengths <= train_max, lengths > train_max
    summary = {
        k: {
            "in_distribution": v[:, ind].mean(1).tolist(),
            "out_of_distribution": v[:, ood].mean(1).tolist(),
        }
        for k, v in metrics.items()
    }
    config = {
        "model": {"encoding": encoding, "encoding_options": options or {}, "width": 32,
                  "num_heads": 2, "num_layers": 2},
        "train": {"steps": 100, "batch_size": 8, "learning_rate": 1e-3, "min_length": 1},
        "eval": {"samples": 16},
    }  # fmt: skip
    return {
        "config": config,
        "task": task,
        "protocol": protocol,
        "encoding": encoding,
        "seeds": list(seeds),
        "train_max_length": train_max,
        "lengths": lengths.tolist(),
        "metrics": {k: v.tolist() for k, v in metrics.items()},
        "summary": summary,
        "num_params": params,
        "steps": 100,
        "batch_size": 8,
        "time_per_step_s": time,
        "backend": "cpu",
        "device_kind": "cpu",
    }


LENGTHS = [1, 2, 3, 4, 5, 6, 9, 13, 25]  # train max 6: 2x=12 is nearest 13, 4x=24 nearest 25
ENCODINGS = {"none": 0.010, "alibi": 0.012, "randomized_rope": 0.020}


def write(path, results):
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(results))


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """Two tasks (encoder copy, decoder reverse) x three encodings, random accuracies."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    for task, protocol in (("copy", "encoder"), ("reverse", "decoder")):
        for i, (enc, time) in enumerate(ENCODINGS.items()):
            acc = rng.uniform(0, 1, size=(2, len(LENGTHS)))
            results = fake_results(
                enc, acc=acc, lengths=LENGTHS, train_max=6, protocol=protocol, time=time,
                params=1000 + i, task=task,
            )  # fmt: skip
            write(root / task / enc, results)
    manifest = {
        "name": "fake sweep",
        "tasks": ["copy", "reverse"],
        "encodings": list(ENCODINGS),
        "runs": [f"{t}/{e}" for t in ("copy", "reverse") for e in ENCODINGS] + ["copy/t5"],
        "metric": "",
    }
    (root / "sweep.json").write_text(json.dumps(manifest))
    paths = write_report(root, log=lambda _: None)
    return root, paths


def parse_tables(markdown):
    """{section heading: [row dicts]} of every markdown table under a "## " or "### " heading."""
    tables, section = {}, None
    for line in markdown.splitlines():
        if line.startswith("## ") or line.startswith("### "):
            section = line.split(" ", 1)[1].strip()
        elif line.startswith("|") and section is not None:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            if section not in tables:
                tables[section] = {"header": cells, "rows": []}
            else:
                tables[section]["rows"].append(
                    dict(zip(tables[section]["header"], cells, strict=True))
                )
    return {k: v["rows"] for k, v in tables.items()}


def number(cell):
    return float(cell.replace("*", "").replace(",", "").rstrip("x"))


def learned_models(run):
    """bool [M], recomputed: the protocol's metric (encoder: per-token accuracy >= 0.99;
    decoder: exact match >= 0.95) pooled over every training length and at the 3 longest."""
    metric, gate = ("token_accuracy", 0.99) if run.protocol == "encoder" else ("exact_match", 0.95)
    values = run.metric(metric)
    inside = run.lengths <= run.train_max_length
    longest = np.sort(run.lengths[inside])[-3:]
    pooled = values[:, inside].mean(1)
    at_longest = values[:, np.isin(run.lengths, longest)].mean(1)
    return (pooled >= gate) & (at_longest >= gate)


def check_report_against_results(report_text, runs):
    """Every cell of every task table equals its recomputation from the runs' raw values.

    Numbers are over the learned models of a run, or over all of them when none is learned
    (then the row is marked); spreads are sample SDs (ddof=1).
    """
    tables = parse_tables(report_text)
    by_task = {}
    for run in runs:
        by_task.setdefault(run.task, []).append(run)
    assert set(tables) >= set(by_task)
    for task, task_runs in by_task.items():
        rows = {r["encoding"]: r for r in tables[task]}
        assert [k for k in rows if not k.startswith("baseline: ")] == [
            r.encoding for r in task_runs
        ]
        nope = [r for r in task_runs if r.encoding_name == "none"]
        ref = nope[0] if nope else min(task_runs, key=lambda r: r.time_per_step_s)
        shown = {}
        for run in task_runs:
            learned = learned_models(run)
            shown[run.encoding] = learned if learned.any() else np.ones_like(learned)

        def ood(r, m, shown=shown):
            return r.metric(m)[shown[r.encoding]][:, r.lengths > r.train_max_length]

        learned_means = [
            100 * ood(r, "exact_match").mean() for r in task_runs if learned_models(r).any()
        ]
        for run in task_runs:
            row = rows[run.encoding]
            ind = run.lengths <= run.train_max_length
            assert row["gate"].startswith("✗") == (not learned_models(run).any())
            for metric, prefix in (("exact_match", "EM"), ("token_accuracy", "tok.")):
                values = run.metric(metric)[shown[run.encoding]]  # [k, n] from raw values
                ood_seeds = values[:, ~ind].mean(1)
                assert number(row[f"{prefix} in-dist. %"]) == pytest.approx(
                    100 * values[:, ind].mean(), abs=0.051
                )
                mean_cell, sd_cell = row[f"{prefix} OOD % (mean ± sd)"].split("±")
                sd = ood_seeds.std(ddof=1) if len(ood_seeds) > 1 else 0.0
                assert number(mean_cell) == pytest.approx(100 * ood_seeds.mean(), abs=0.051)
                assert number(sd_cell) == pytest.approx(100 * sd, abs=0.051)
            bold = row["EM OOD % (mean ± sd)"].startswith("**")
            assert bold == (
                bool(learned_models(run).any())
                and round(100 * ood(run, "exact_match").mean(), 1) == round(max(learned_means), 1)
            )
            seen = set()
            for factor in (1, 2, 4):
                length = nearest_length(run.lengths, factor * run.train_max_length)
                keys = [k for k in row if k.startswith(f"T={length} ({factor}x)")]
                if length in seen:  # the grid stops short: no column repeats a length
                    assert keys == []
                    continue
                seen.add(length)
                em_cell, tok_cell = row[keys[0]].split("/")
                for cell, metric in ((em_cell, "exact_match"), (tok_cell, "token_accuracy")):
                    values = run.metric(metric)[shown[run.encoding]]
                    expected = 100 * values[:, run.lengths == length].mean()
                    assert number(cell) == pytest.approx(expected, abs=0.051)
            rel = run.time_per_step_s / ref.time_per_step_s
            assert number(row["step time (rel.)"]) == pytest.approx(rel, abs=0.0051)
            assert number(row["params"]) == run.num_params
        baselines = task_runs[0].baselines
        if baselines:
            lengths = np.asarray(baselines["lengths"])
            ind = lengths <= task_runs[0].train_max_length
            for rule, title in (("uniform", "uniform"), ("majority", "majority"),
                                ("input_blind", "input-blind")):  # fmt: skip
                row = rows[f"baseline: {title}"]
                for metric, prefix in (("exact_match", "EM"), ("token_accuracy", "tok.")):
                    values = np.asarray(baselines[rule][metric])
                    assert number(row[f"{prefix} in-dist. %"]) == pytest.approx(
                        100 * values[ind].mean(), abs=0.051
                    )
                    assert number(row[f"{prefix} OOD % (mean ± sd)"]) == pytest.approx(
                        100 * values[~ind].mean(), abs=0.051
                    )


def test_report_numbers_equal_those_recomputed_from_results(sweep_dir):
    root, paths = sweep_dir
    text = paths["report"].read_text()
    check_report_against_results(text, load_runs(root))


def test_named_lengths_are_the_nearest_evaluated_and_nope_is_the_time_unit(sweep_dir):
    tables = parse_tables(sweep_dir[1]["report"].read_text())
    assert [k for k in tables["copy"][0] if k.startswith("T=")] == [
        "T=6 (1x) EM / tok. %",
        "T=13 (2x) EM / tok. %",
        "T=25 (4x) EM / tok. %",
    ]
    assert [r["step time (rel.)"] for r in tables["copy"]] == ["1.00x", "1.20x", "2.00x"]
    # Random accuracies: EM = acc**2 never reaches the gate, so no run is learned and no
    # value is bold (the best OOD mean is taken among learned runs only).
    assert all(r["gate"].startswith("✗ not learned") for r in tables["copy"])
    assert sum(r["EM OOD % (mean ± sd)"].startswith("**") for r in tables["copy"]) == 0


def test_decoder_protocol_reports_exact_match_and_missing_runs_are_listed(sweep_dir):
    text = sweep_dir[1]["report"].read_text()
    reverse = text.split("## reverse")[1].split("## ")[0]
    assert "Plotted metric: exact match (`exact_match`)" in reverse
    assert "## Not finished\n\n- copy/t5" in text
    assert text.startswith("# fake sweep\n")


def test_without_nope_step_time_is_relative_to_the_fastest(tmp_path):
    for enc, time in (("rope", 0.03), ("alibi", 0.02)):
        acc = np.full((1, 3), 0.5)
        write(tmp_path / "copy" / enc, fake_results(enc, acc=acc, lengths=[2, 4, 8], train_max=4,
                                                    seeds=(0,), time=time))  # fmt: skip
    text = write_report(tmp_path, log=lambda _: None)["report"].read_text()
    rows = parse_tables(text)["copy"]
    assert [r["step time (rel.)"] for r in rows] == ["1.00x", "1.50x"]  # alibi, rope: by path
    assert "the fastest encoding (alibi; no NoPE run in this task)" in text
    assert [k for k in rows[0] if k.startswith("T=")] == [
        "T=4 (1x) EM / tok. %",
        "T=8 (2x) EM / tok. %",
    ]


def test_csv_has_one_row_per_task_encoding_seed_length(sweep_dir):
    root, paths = sweep_dir
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(ENCODINGS) * 2 * len(LENGTHS)  # no baselines in these files
    header = list(rows[0])
    assert header.index("exact_match") < header.index("token_accuracy")  # EM first
    assert {r["kind"] for r in rows} == {"model"}
    keys = {(r["task"], r["encoding"], r["seed"], r["length"]) for r in rows}
    assert len(keys) == len(rows)
    for run in load_runs(root):
        acc = run.metric("token_accuracy")
        for r in rows:
            if r["task"] == run.task and r["encoding"] == run.encoding:
                s, i = run.seeds.index(int(r["seed"])), LENGTHS.index(int(r["length"]))
                assert float(r["token_accuracy"]) == acc[s, i]
                assert r["learned"] == str(bool(learned_models(run)[s]))
                assert r["split"] == ("in" if int(r["length"]) <= 6 else "out")


def test_pngs_decode_to_the_expected_size(sweep_dir):
    _, paths = sweep_dir
    assert paths["findings"].read_text().startswith("# Findings")
    for key in ("accuracy_plot", "cost_plot"):
        image = imread(paths[key])
        assert image.shape[:2] == figure_pixels(2, len(ENCODINGS))
        assert image[..., :3].std() > 0.05  # something was drawn


def test_report_command_rebuilds_everything_from_results_only(sweep_dir, tmp_path):
    root, paths = sweep_dir
    before = {p: p.stat().st_mtime_ns for p in root.rglob("results.json")}
    expected = paths["report"].read_text()
    for path in paths.values():
        path.unlink()
    subprocess.run(
        [sys.executable, "-m", "experiments.sweep", "report", f"--workdir={root}"],
        check=True,
        capture_output=True,
    )
    assert all(p.exists() for p in paths.values())
    assert paths["report"].read_text() == expected
    assert before == {p: p.stat().st_mtime_ns for p in root.rglob("results.json")}


def test_labels_come_from_the_folders_and_the_manifest_orders_them(sweep_dir):
    runs = load_runs(sweep_dir[0])
    assert [(r.task, r.encoding) for r in runs] == [
        (t, e) for t in ("copy", "reverse") for e in ENCODINGS
    ]


def test_empty_or_missing_folder_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="no finished run"):
        write_report(tmp_path, log=lambda _: None)
    with pytest.raises(ValueError, match="is not a folder"):
        load_runs(tmp_path / "absent")


def test_nearest_length_prefers_the_shorter_on_a_tie():
    assert nearest_length(np.array([4, 8, 12]), 10) == 8
    assert nearest_length(np.array([4, 8, 12]), 11) == 12
    assert re.fullmatch(r"\d+", str(nearest_length(np.array([1]), 100)))
