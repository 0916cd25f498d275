"""pe_jax: positional encodings for transformers in JAX/Flax.

`pe_jax.encodings` (also re-exported here) holds every encoding as a pure function;
`pe_jax.nn` the Flax NNX adapters and transformer; `pe_jax.tasks`, `pe_jax.training`,
`pe_jax.evaluation` and `pe_jax.reporting` the length-generalization bench.
"""

from pe_jax.encodings import *  # noqa: F403
from pe_jax.encodings import __all__ as _encodings_all

__version__ = "0.1.0"
__all__ = list(_encodings_all)
