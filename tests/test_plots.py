"""Figures a paper can use: resolution and PDF, integer ticks, the t band, faded runs, CPU cost."""

import json

import numpy as np
import pytest
from matplotlib.image import imread

from pe_jax.reporting import accuracy_figure, load_runs, plot_accuracy_vs_length, plot_ood_vs_cost
from pe_jax.reporting._plots import DPI, cost_figure, figure_pixels

LENGTHS = [1, 2, 3, 4, 5, 6, 7, 8]  # trained up to 4
T_975_2 = 4.302652729911275  # Student's t quantile 0.975 with 2 degrees of freedom


def write_run(root, encoding, em, *, learned, cpu=None, time=0.01, task="copy"):
    """A results.json (schema 3 when `cpu` is given) of one model per row of `em` [M, n]; a
    model not `learned` scores 0.5 in distribution, so the report's gate fails it."""
    em = np.array(em, np.float64)
    seeds = list(range(len(em)))
    ind = np.asarray(LENGTHS) <= 4
    em[np.ix_(~np.asarray(learned, bool), ind)] = 0.5
    metrics = {"exact_match": em, "token_accuracy": em, "loss": 1 - em}
    results = {
        "config": {"model": {"encoding": encoding}, "train": {"learning_rate": 1e-3}},
        "task": task,
        "protocol": "decoder",
        "encoding": encoding,
        "seeds": seeds,
        "train_max_length": 4,
        "lengths": LENGTHS,
        "metrics": {k: v.tolist() for k, v in metrics.items()},
        "summary": {
            k: {
                "in_distribution": v[:, ind].mean(1).tolist(),
                "out_of_distribution": v[:, ~ind].mean(1).tolist(),
            }
            for k, v in metrics.items()
        },
        "num_params": 1000,
        "steps": 100,
        "time_per_step_s": time,
        "models": [{"seed": s, "learning_rate": 1e-3} for s in seeds],
        "gate": {"metric": "exact_match", "threshold": 0.99, "lengths": [4]},
        "learned": list(learned),
        "until": None,
        "schema_version": 2,
    }
    if cpu is not None:
        results.update(cpu_seconds_per_step=cpu, compile_seconds=1.0, schema_version=3)
    folder = root / task / encoding
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))


def curve(ood):
    return [1.0] * 4 + [ood] * 4


@pytest.fixture
def runs(tmp_path):
    # none: 3 learned seeds with OOD 0.5, 0.55, 0.6; alibi: none learned; rope: 2 of 3 learned.
    write_run(tmp_path, "none", [curve(0.5), curve(0.55), curve(0.6)], learned=[True] * 3,
              cpu=0.02, time=0.05)  # fmt: skip
    write_run(tmp_path, "alibi", [curve(0.1)] * 3, learned=[False] * 3, cpu=0.03, time=0.01)
    write_run(
        tmp_path, "rope", [curve(0.3), curve(0.4), curve(0.0)], learned=[True, True, False]
    )  # fmt: skip (written before CPU time was recorded)
    return load_runs(tmp_path)


def test_png_at_200_dpi_and_a_pdf_beside_it(runs, tmp_path):
    assert DPI >= 200
    for plot in (plot_accuracy_vs_length, plot_ood_vs_cost):
        png = plot(runs, tmp_path / f"{plot.__name__}.png")
        assert imread(png).shape[:2] == figure_pixels(1, 3, dpi=DPI)
        pdf = png.with_suffix(".pdf")
        assert pdf.read_bytes().startswith(b"%PDF")


def test_length_ticks_are_integers(runs):
    fig = accuracy_figure(runs)
    fig.canvas.draw()
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert len(ticks) >= 3
    assert all(float(t).is_integer() for t in ticks)
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all(label.lstrip("−-").isdigit() for label in labels)


def test_band_is_the_seed_level_t_interval(runs):
    fig = accuracy_figure(runs)
    ax = fig.axes[0]
    band = next(c for c in ax.collections if c.get_gid() == "band:none")
    ood = np.array([0.5, 0.55, 0.6])
    half = T_975_2 * ood.std(ddof=1) / np.sqrt(3)  # 0.124: inside [0, 1], nothing clipped
    vertices = band.get_paths()[0].vertices
    at_8 = sorted({round(y, 9) for x, y in vertices if x == 8})
    np.testing.assert_allclose(at_8, [ood.mean() - half, ood.mean() + half])
    in_dist = {round(y, 9) for x, y in vertices if x == 2}
    assert in_dist == {1.0}  # every seed scores 1: no width
    assert "95% t interval over seeds" in fig.legends[0].get_title().get_text()
    mean_line = next(line for line in ax.lines if line.get_gid() == "model:none")
    np.testing.assert_allclose(mean_line.get_ydata()[-1], ood.mean())


def test_not_learned_runs_are_one_faded_line_and_named_in_the_caption(runs):
    fig = accuracy_figure(runs)
    ax = fig.axes[0]
    gids = [line.get_gid() for line in ax.lines]
    assert gids.count("not_learned:alibi") == 1 and "model:alibi" not in gids
    faded = next(line for line in ax.lines if line.get_gid() == "not_learned:alibi")
    assert faded.get_alpha() < 0.5
    # rope: its learned two make the line; its third model is not drawn, only named.
    rope = next(line for line in ax.lines if line.get_gid() == "model:rope")
    np.testing.assert_allclose(rope.get_ydata()[-1], 0.35)
    caption = " ".join(ax.get_xlabel().split())  # wrapped over lines
    assert "alibi: all 3 models (faded)" in caption and "rope: 1 of 3 models" in caption


def test_baselines_have_their_own_legend_and_styles(tmp_path):
    write_run(tmp_path, "none", [curve(0.5)] * 2, learned=[True] * 2)
    path = tmp_path / "copy" / "none" / "results.json"
    data = json.loads(path.read_text())
    data["baselines"] = {"lengths": LENGTHS} | {
        rule: {"exact_match": [v] * 8, "token_accuracy": [v] * 8}
        for rule, v in (("uniform", 0.0), ("majority", 0.0), ("input_blind", 0.1))
    }
    path.write_text(json.dumps(data))
    fig = accuracy_figure(load_runs(tmp_path))
    lines = {line.get_gid(): line for line in fig.axes[0].lines}
    styles = {
        (str(lines[f"baseline:{r}"].get_color()), str(lines[f"baseline:{r}"]._dash_pattern))
        for r in ("uniform", "majority", "input_blind")
    }
    assert len(styles) == 3  # three colours and dash patterns, even where the lines meet
    encodings, baselines = ([t.get_text() for t in legend.get_texts()] for legend in fig.legends)
    assert encodings == ["none"]
    assert len(baselines) == 4 and "best input-blind rule" in baselines


def test_cost_plot_reads_cpu_seconds_per_step_and_names_the_runs_without_it(runs):
    fig = cost_figure(runs)
    ax = fig.axes[0]
    points = {line.get_gid(): line for line in ax.lines if line.get_gid()}
    # x is CPU time relative to NoPE: alibi 0.03 / 0.02 = 1.5 (its wall time says 0.2).
    x = {gid: np.asarray(line.get_xdata(), np.float64) for gid, line in points.items()}
    np.testing.assert_allclose(x["model:none"], [1.0])
    np.testing.assert_allclose(x["not_learned:alibi"], [1.5])
    assert "model:rope" not in points
    assert "CPU time per step relative to NoPE" in ax.get_xlabel()
    assert "Left out" in ax.get_xlabel() and "rope" in ax.get_xlabel().split("Left out")[1]


def test_a_panel_no_model_learned_says_so_once(tmp_path):
    write_run(tmp_path, "none", [curve(0.1)] * 2, learned=[False] * 2)
    write_run(tmp_path, "rope", [curve(0.2)] * 2, learned=[False] * 2)
    ax = accuracy_figure(load_runs(tmp_path)).axes[0]
    assert "Not learned by any model of any encoding" in ax.get_xlabel()
    assert sorted(line.get_gid() for line in ax.lines if "learned" in line.get_gid()) == [
        "not_learned:none",
        "not_learned:rope",
    ]


def test_cost_axis_leaves_out_runs_without_a_timed_step():
    from types import SimpleNamespace

    from pe_jax.reporting._plots import cpu_seconds_per_step

    def run(value):
        return SimpleNamespace(results=SimpleNamespace(cpu_seconds_per_step=value))

    assert cpu_seconds_per_step(run(0.25)) == 0.25
    # A run resumed after its last step trained nothing in that session: 0 is no cost.
    assert [cpu_seconds_per_step(run(v)) for v in (None, 0.0, float("nan"))] == [None] * 3
