"""The run files' owner: results.json round trip and schema version, atomic writes, manifest."""

import json

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
    # Written again, it has exactly the old fields plus its version.
    assert results.to_json() == {**data, "schema_version": 1}
    assert Results.from_json(results.to_json()) == results
    write_results(tmp_path, results)
    assert json.loads((tmp_path / RESULTS).read_text())["schema_version"] == 1
    assert read_results(tmp_path) == read_results(tmp_path / RESULTS) == results


def test_compile_seconds_round_trip_in_a_version_2_file(tmp_path):
    assert SCHEMA_VERSION == 2
    data = {**old_file(), "compile_s": {"train": 12.5, "eval": 3.25}, "schema_version": 2}
    results = Results.from_json(data)
    assert results.compile_s == data["compile_s"]
    assert results.to_json() == data
    write_results(tmp_path, results)
    assert read_results(tmp_path) == results
    assert Results.from_json(old_file()).compile_s is None  # optional: older files load


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
    lines = [{"step": 5}, {"step": 10}, {"step": 15}, {"step": 10, "event": "eval"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 2')
    truncate_metrics(path, 10)
    assert [json.loads(x) for x in path.read_text().splitlines()] == lines[:2]
    truncate_metrics(tmp_path / "absent.jsonl", 3)  # nothing to keep: no error
