"""Measure every hot path against this device's floors; print a table, write JSON.

  python -m experiments.benchmark                    # full run
  python -m experiments.benchmark --quick            # small sizes
  python -m experiments.benchmark --sections=floors,rope --out=/tmp/rope.json
  python -m experiments.benchmark --sections=science --preset=quick   # the science workload
  python -m experiments.benchmark --preset=gpu --sections=science     # on an NVIDIA GPU only
  python -m experiments.benchmark --from_json=benchmark.json --markdown=benchmark.md

Sections: floors, rope, bias, train, profile, seeds, sweep, memory, peers (one model against
x-transformers eager, flash and torch.compile), science (a sweep's K = seeds x rates models
per protocol in pe_jax's one program against x-transformers training them one after another,
eager and torch.compile; see docs/performance.md). Presets: full, quick, tiny (the tests'),
gpu (refuses a machine without a GPU).

The peer comparisons need the optional extra: pip install -e .[bench]
"""

import json
from pathlib import Path

from absl import app, flags

from experiments import _cli
from pe_jax import runtime
from pe_jax._names import did_you_mean
from pe_jax.benchmark import (
    DEFAULT_SECTIONS,
    PRESETS,
    SECTIONS,
    BenchmarkConfig,
    check_device,
    check_sections,
    format_table,
    run_benchmark,
    write_results,
)

_QUICK = flags.DEFINE_bool("quick", False, "Small sizes (the preset 'quick').")
_PRESET = flags.DEFINE_enum("preset", None, PRESETS, "Sizes by name; overrides --quick.")
_OUT = flags.DEFINE_string("out", "benchmark.json", "Where the JSON results go.")
_MARKDOWN = flags.DEFINE_string("markdown", None, "Also write the printed tables to this file.")
_FROM = flags.DEFINE_string("from_json", None, "Only print (and --markdown) an earlier JSON.")
_SECTIONS = flags.DEFINE_list(
    "sections", list(DEFAULT_SECTIONS), f"Sections to run, among {SECTIONS} (jobs only if named)."
)


def main(argv):
    del argv
    preset = _PRESET.value or ("quick" if _QUICK.value else "full")
    with _cli.user_errors():
        check_sections(_SECTIONS.value)
        if not _FROM.value:
            check_device(BenchmarkConfig.preset(preset))
    if _FROM.value and not Path(_FROM.value).is_file():
        nearby = [p.name for p in Path(_FROM.value).parent.glob("*.json")]
        hint = did_you_mean(Path(_FROM.value).name, nearby)
        raise app.UsageError(f"--from_json={_FROM.value!r} is not a file.{hint}")
    if _FROM.value:
        results = json.loads(Path(_FROM.value).read_text())
    else:
        # The entry points' XLA:CPU flags (unless XLA_FLAGS is set); no compilation cache, so
        # that compile times are measured, not loaded.
        runtime.configure(cache_dir="")
        results = run_benchmark(BenchmarkConfig.preset(preset), sections=tuple(_SECTIONS.value))
        print(f"wrote {write_results(results, _OUT.value)}")
    table = format_table(results)
    print(table)
    if _MARKDOWN.value:
        Path(_MARKDOWN.value).write_text(table + "\n")


def run() -> None:
    """The `pe-jax-benchmark` console script."""
    _cli.run(main)


if __name__ == "__main__":
    run()
