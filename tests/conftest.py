"""Test settings: fast XLA compiles and small hypothesis budgets, so the suite fits 2 cores."""

import os

# Tiny test models spend most of their time compiling; XLA's backend optimisations do not change
# results, only speed, and at this size they cost more than they save. Set before jax loads.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
# Entry points started by tests keep their compilation cache out of the user's home.
os.environ.setdefault("PE_JAX_CACHE_DIR", os.path.join("/tmp", "pe_jax_test_xla_cache"))

from hypothesis import settings  # noqa: E402

settings.register_profile("pe_jax", max_examples=20, deadline=None, derandomize=True)
settings.load_profile("pe_jax")
