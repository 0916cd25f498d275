"""Flax NNX: encoding adapters by name, attention, the Transformer, KV-cache decoding."""

from pe_jax.nn._attention import Attention, attend, attention_probs, causal_mask
from pe_jax.nn._base import PLACES, Encoding
from pe_jax.nn._config import TransformerConfig
from pe_jax.nn._declare import register_encoding
from pe_jax.nn._decode import decode_step, generate, init_cache
from pe_jax.nn._registry import check_options, encoding_doc, list_encodings, make_encoding
from pe_jax.nn._transformer import Block, Transformer

__all__ = [
    "PLACES",
    "Attention",
    "Block",
    "Encoding",
    "Transformer",
    "TransformerConfig",
    "attend",
    "attention_probs",
    "causal_mask",
    "check_options",
    "decode_step",
    "encoding_doc",
    "generate",
    "init_cache",
    "list_encodings",
    "make_encoding",
    "register_encoding",
]
