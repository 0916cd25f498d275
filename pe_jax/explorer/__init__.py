"""The visual explorer: the blog post's argument as PNG figures, drawn by the library.

Figures 1-8 plot pe_jax.encodings' pure functions; figure 9 loads trained runs and plots their
attention (pe_jax.evaluation.sample_attention), so this package sits above evaluation and
training, beside experiments. docs/explorer.md walks through the figures.
"""

from pe_jax.explorer._attention import attention_figures, plot_attention_maps
from pe_jax.explorer._figures import WrittenFigure, select_figures, write_explorer, write_index
from pe_jax.explorer._visualize import write_figures

__all__ = [
    "WrittenFigure",
    "attention_figures",
    "plot_attention_maps",
    "select_figures",
    "write_explorer",
    "write_figures",
    "write_index",
]
