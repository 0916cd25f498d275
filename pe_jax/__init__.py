"""pe_jax: positional encodings for transformers in JAX/Flax.

`pe_jax.encodings` (also re-exported here) holds every encoding as a pure function;
`pe_jax.nn` the Flax NNX adapters and transformer; `pe_jax.tasks`, `pe_jax.training`,
`pe_jax.evaluation` and `pe_jax.reporting` the length-generalization bench.
"""

import importlib

__version__ = "0.1.0"


def __getattr__(name: str):
    """The encodings (and `__all__`) load on first use, so the JAX-free low modules
    (`pe_jax.config_fields`, `pe_jax.config_files`, ...) import without JAX."""
    encodings = importlib.import_module("pe_jax.encodings")
    if name == "__all__":
        return list(encodings.__all__)
    if name in encodings.__all__:
        return getattr(encodings, name)
    raise AttributeError(f"module 'pe_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__getattr__("__all__")])
