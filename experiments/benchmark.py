"""Measure every hot path against this device's floors; print a table, write JSON (issue 7).

  python -m experiments.benchmark                    # full run (about 20-30 min on 2 CPU cores)
  python -m experiments.benchmark --quick            # under 2 minutes on 2 CPU cores
  python -m experiments.benchmark --sections=floors,rope --out=/tmp/rope.json

The peer comparison needs the optional extra: pip install -e .[bench]
"""

from absl import app, flags

from pe_jax.benchmark import (
    PRESETS,
    SECTIONS,
    BenchmarkConfig,
    format_table,
    run_benchmark,
    write_results,
)

_QUICK = flags.DEFINE_bool("quick", False, "Small sizes: finishes in under 2 minutes.")
_PRESET = flags.DEFINE_enum("preset", None, PRESETS, "Sizes by name; overrides --quick.")
_OUT = flags.DEFINE_string("out", "benchmark.json", "Where the JSON results go.")
_SECTIONS = flags.DEFINE_list("sections", list(SECTIONS), f"Sections to run, among {SECTIONS}.")


def main(argv):
    del argv
    preset = _PRESET.value or ("quick" if _QUICK.value else "full")
    results = run_benchmark(BenchmarkConfig.preset(preset), sections=tuple(_SECTIONS.value))
    print(format_table(results))
    print(f"wrote {write_results(results, _OUT.value)}")


if __name__ == "__main__":
    app.run(main)
