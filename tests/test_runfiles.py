"""The run files' owner: results.json round trip and schema version, atomic writes, manifest."""

import json

import numpy as np
import pytest

from pe_jax.runfiles import (
    MANIFEST,
    RESULTS,
    SCHEMA_VERSION,
    Results,
    read_manifest,
    read_results,
    truncate_metrics,
    write_json_atomic,
    write_manifest,
    write_results,
)


def old_file() -> dict:
    """A results.json as the runner wrote it before the schema version was recorded."""
    return {
        "config": {"model": {"encoding": "rope"}},
        "task": "copy",
        "protocol": "encoder",
        "encoding": "rope",
        "seeds": [0, 1],
        "train_max_length": 4,
        "lengths": [1, 8],
        "metrics": {"token_accuracy": [[1.0, 0.5], [1.0, 0.25]]},
        "summary": {"token_accuracy": {"in_distribution": [1.0, 1.0]}},
        "bucket_means": {"token_accuracy": {"1-1": [1.0, 1.0]}},
        "num_params": 1234,
        "steps": 20,
        "batch_size": 8,
        "train_time_s": 1.5,
        "time_per_step_s": 0.01,
        "steps_run_this_session": 20,
        "eval_time_s": 0.5,
        "num_compilations": {"train_step": 1, "evaluation": 3},
        "jax_version": "0.10.2",
        "backend": "cpu",
        "device_kind": "cpu",
        "device_count": 1,
        "process_count": 1,
        "mesh_shape": [1, 1],
        "platform": "Linux",
    }


def test_old_file_reads_as_version_1_and_round_trips(tmp_path):
    data = old_file()
    results = Results.from_json(data)
    assert results.schema_version == 1 < SCHEMA_VERSION  # read as written: version 1
    assert results.metrics == data["metrics"] and results.mesh_shape == [1, 1]
    assert results.models is None and results.learned is None and results.until is None
    # Written again, it has exactly the old fields plus its version.
    assert results.to_json() == {**data, "schema_version": 1}
    assert Results.from_json(results.to_json()) == results
    write_results(tmp_path, results)
    assert json.loads((tmp_path / RESULTS).read_text())["schema_version"] == 1
    assert read_results(tmp_path) == read_results(tmp_path / RESULTS) == results


def test_version_2_adds_the_models_axis_and_the_gate(tmp_path):
    data = {k: v for k, v in old_file().items() if k != "schema_version"}
    gate = {
        "metric": "exact_match",
        "threshold": 0.99,
        "lengths": [3, 4],
        "exact_match": [1.0, 0.5],
        "token_accuracy": [1.0, 0.75],
    }
    models = [{"seed": 0, "learning_rate": 1e-3}, {"seed": 1, "learning_rate": 1e-3}]
    new = dict(models=models, gate=gate, learned=[True, False], steps_trained=[20, 20])
    results = Results(**data, **new)  # written now: the current version, until off
    assert results.schema_version == SCHEMA_VERSION
    assert results.to_json() == {**data, **new, "until": None, "schema_version": SCHEMA_VERSION}
    write_results(tmp_path, results)
    assert read_results(tmp_path) == results
    stopped = Results.from_json({**results.to_json(), "until": 0.9, "steps_trained": [12, 20]})
    assert stopped.until == 0.9 and stopped.steps_trained == [12, 20]


def test_compile_seconds_round_trip_in_a_version_2_file(tmp_path):
    compile_s = {"train": 12.5, "eval": 3.25}
    data = {**old_file(), "compile_s": compile_s, "until": None, "schema_version": 2}
    results = Results.from_json(data)
    assert results.compile_s == data["compile_s"]
    assert results.to_json() == data
    write_results(tmp_path, results)
    assert read_results(tmp_path) == results
    assert Results.from_json(old_file()).compile_s is None  # optional: older files load


def test_version_3_adds_cpu_time_per_step_and_older_files_load_without_it(tmp_path):
    assert SCHEMA_VERSION == 3
    version_2 = {**old_file(), "until": None, "schema_version": 2}
    old = Results.from_json(version_2)
    assert old.cpu_seconds_per_step is None and old.compile_seconds is None
    assert old.to_json() == version_2  # nothing added on the way through
    data = {**version_2, "cpu_seconds_per_step": 0.052, "compile_seconds": 4.5}
    data["schema_version"] = 3
    results = Results.from_json(data)
    assert (results.cpu_seconds_per_step, results.compile_seconds) == (0.052, 4.5)
    write_results(tmp_path, results)
    assert read_results(tmp_path) == results


def test_hand_made_file_without_runner_fields_round_trips():
    data = {k: v for k, v in old_file().items() if k not in ("bucket_means", "platform")}
    results = Results.from_json(data)
    assert results.bucket_means is None and results.platform is None
    assert results.to_json() == {**data, "schema_version": 1}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"schema_version": SCHEMA_VERSION + 1}, "schema_version"),
        ({"colour": "red"}, "unknown fields"),
        ({"lengths": None}, None),
    ],
)
def test_bad_results_are_refused_naming_the_file(tmp_path, change, message):
    data = {**old_file(), **change}
    if change.get("lengths", 0) is None:
        del data["lengths"]
        message = "lacks the fields \\['lengths'\\]"
    (tmp_path / RESULTS).write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as info:
        read_results(tmp_path)
    assert str(tmp_path / RESULTS) in str(info.value)


def test_damaged_file_is_named(tmp_path):
    (tmp_path / RESULTS).write_text('{"task": "copy", ')
    with pytest.raises(ValueError, match="damaged") as info:
        read_results(tmp_path / RESULTS)
    assert str(tmp_path / RESULTS) in str(info.value)


def test_write_json_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("old")
    write_json_atomic(path, {"b": [1, 2], "a": 1.5})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
    with pytest.raises(TypeError):  # not JSON: the old contents stay whole
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [1, 2]}


def test_manifest_round_trip(tmp_path):
    assert read_manifest(tmp_path) is None
    manifest = {"name": "s", "tasks": ["copy"], "encodings": ["rope"], "runs": ["copy/rope"]}
    write_manifest(tmp_path / "sweep", manifest)
    assert (tmp_path / "sweep" / MANIFEST).exists()
    assert read_manifest(tmp_path / "sweep") == manifest


def test_truncate_metrics_keeps_steps_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [
        {"step": 5},
        {"step": 10},
        {"step": 10, "event": "gate", "gate": {"exact_match": [1.0]}},
        {"step": 15},
        {"step": 15, "event": "gate", "gate": {"exact_match": [1.0]}},
        {"step": 10, "event": "eval"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 2')
    truncate_metrics(path, 10)
    # The gate of the checkpointed step ran before its save: it stays, later ones go.
    assert [json.loads(x) for x in path.read_text().splitlines()] == lines[:3]
    truncate_metrics(tmp_path / "absent.jsonl", 3)  # nothing to keep: no error


def test_examples_round_trip_and_absent_file_reads_as_none(tmp_path):
    from pe_jax.runfiles import read_examples, write_examples

    assert read_examples(tmp_path) is None
    em = np.random.default_rng(0).uniform(size=(2, 3, 5)) < 0.5
    write_examples(tmp_path, lengths=[1, 2, 4], exact_match=em, token_accuracy=em * 0.5,
                   eval_seed=7)  # fmt: skip
    back = read_examples(tmp_path)
    np.testing.assert_array_equal(back["exact_match"], em)
    np.testing.assert_array_equal(back["lengths"], [1, 2, 4])
    assert back["eval_seed"] == 7 and back["token_accuracy"].dtype == np.float32
    with pytest.raises(ValueError, match="lengths"):
        write_examples(tmp_path, lengths=[1], exact_match=em, token_accuracy=em, eval_seed=0)
