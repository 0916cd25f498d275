"""The visual explorer: the blog post's derivation as PNG figures, plus a trained run's attention.

  python -m experiments.visualize --out=figures/
  python -m experiments.visualize --out=figures/ --only=ladder,relative
  python -m experiments.visualize --out=figures/ --run=runs/copy_rope
  python -m experiments.visualize --out=figures/ --only=attention --run=runs/quick --task=copy

Figures 1-8 come from pe_jax.encodings alone; figure 9 (`--run`, a run folder written by
train_and_evaluate or a sweep folder of them) shows one head's attention at the training length
and at `--factor` times it, one row per encoding. Captions go to <out>/index.md; docs/explorer.md
walks through the figures.
"""

from absl import flags, logging

from experiments import _cli
from pe_jax.explorer import select_figures, write_figures

_OUT = flags.DEFINE_string("out", "figures", "Folder for the PNGs and index.md.")
_ONLY = flags.DEFINE_string(
    "only", None, "Comma-separated figure names or numbers 1-9 (default: all)."
)
_RUN = flags.DEFINE_string("run", None, "A run folder, or a sweep folder of runs (figure 9).")
_TASK = flags.DEFINE_string("task", None, "Sweep task label(s) for figure 9; default the first.")
_LAYER = flags.DEFINE_integer("layer", -1, "Block whose attention figure 9 shows (-1: last).")
_HEAD = flags.DEFINE_integer("head", -1, "Head figure 9 shows (-1: most position-locked).")
_SEED_INDEX = flags.DEFINE_integer("seed_index", 0, "Which of the run's seeds (0-based).")
_FACTOR = flags.DEFINE_integer("factor", 4, "Figure 9's long length, in training lengths.")
_DPI = flags.DEFINE_integer("dpi", 100, "Dots per inch.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # Orbax logs every restore at INFO
    with _cli.user_errors():
        select_figures(_ONLY.value)
    if _RUN.value is not None:
        _cli.check_folder("--run", _RUN.value)
    write_figures(
        _OUT.value,
        only=_ONLY.value,
        run=_RUN.value,
        tasks=_TASK.value,
        layer=_LAYER.value,
        head=None if _HEAD.value < 0 else _HEAD.value,
        seed_index=_SEED_INDEX.value,
        factor=_FACTOR.value,
        dpi=_DPI.value,
    )


def run() -> None:
    """The `pe-jax-visualize` console script."""
    _cli.run(main)


if __name__ == "__main__":
    run()
