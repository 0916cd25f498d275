"""Test settings: small hypothesis budgets so the suite stays fast on 2 cores."""

from hypothesis import settings

settings.register_profile("pe_jax", max_examples=20, deadline=None, derandomize=True)
settings.load_profile("pe_jax")
