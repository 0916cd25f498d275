"""The registry is built from the adapters' declarations; `register_encoding` adds one."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from pe_jax.nn import (
    PLACES,
    Encoding,
    Transformer,
    TransformerConfig,
    _declare,
    encoding_doc,
    list_encodings,
    make_encoding,
    register_encoding,
)

# What list_encodings() returned before the registry was derived from declarations.
BASE = (
    "alibi axial binary cope dynamic_bias fire forgetting_gate hope integer kerple_log "
    "kerple_power learned mrope none normalized path pope rope rope_2d rope_complex rope_mixed "
    "sandwich scaled_sinusoidal shaw sinusoidal t5 transformer_xl xpos"
).split()
WITH_VARIANTS = (
    "binary dynamic_bias fire hope integer kerple_log kerple_power learned normalized pope "
    "rope rope_complex sandwich scaled_sinusoidal shaw sinusoidal t5 xpos alibi transformer_xl"
).split()


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry, so a test's registrations do not outlive it."""
    monkeypatch.setattr(_declare, "_CLASSES", dict(_declare._CLASSES))
    monkeypatch.setattr(_declare, "_NAMES", dict(_declare._NAMES))


def test_the_same_70_names_as_before():
    names = list_encodings()
    assert len(names) == 70 and names == sorted(names)
    randomized = [n for n in names if n.startswith("randomized_")]
    shifted = [n for n in names if n.startswith("shifted_")]
    base = [n for n in names if n not in randomized and n not in shifted]
    assert (len(base), len(randomized), len(shifted)) == (28, 22, 20)
    assert base == sorted(BASE)
    assert shifted == sorted(f"shifted_{n}" for n in WITH_VARIANTS)
    expected = [f"randomized_{n}" for n in WITH_VARIANTS]
    expected += ["randomized_positions_alibi", "randomized_positions_transformer_xl"]
    assert randomized == sorted(expected)


def test_every_builtin_declares_a_place():
    for name in BASE:
        cls = _declare._CLASSES[name]
        assert cls.__dict__["name"] == name and cls.place in PLACES
        assert isinstance(cls.takes_positions, bool)


class _Linear(Encoding):
    """b(i, j) = -slope * |i - j|, every head alike."""

    place = "logits"
    takes_positions = True

    def __init__(self, num_heads: int, *, slope: float = 1.0):
        if not slope > 0:
            raise ValueError(f"slope must be > 0, got {slope!r}.")
        self.num_heads, self.slope = num_heads, slope

    def bias(self, q_positions, k_positions):
        d = jnp.abs(q_positions[..., :, None] - k_positions[..., None, :]).astype(jnp.float32)
        d = d.reshape(-1, 1, *d.shape[-2:])
        return jnp.repeat(-self.slope * d, self.num_heads, axis=1)


def _declared(name, **attributes):
    return type("Declared", (_Linear,), {"name": name, "__module__": __name__, **attributes})


def test_a_registered_encoding_is_used_by_name_with_its_variants(registry):
    cls = register_encoding(_declared("linear_test"))
    assert {"linear_test", "randomized_linear_test", "shifted_linear_test"} <= set(list_encodings())
    assert len(list_encodings()) == 73
    assert isinstance(make_encoding("linear_test", width=8, num_heads=2, head_dim=4,
                                    rngs=nnx.Rngs(0)), cls)  # fmt: skip
    assert "slope=1.0" in encoding_doc("linear_test")
    config = TransformerConfig(
        vocab_size=6, width=8, num_heads=2, num_layers=1, encoding="shifted_linear_test",
        encoding_options={"slope": 0.5},
    )  # fmt: skip
    model = Transformer(config, rngs=nnx.Rngs(0))
    logits, _ = model(jnp.zeros((2, 5), jnp.int32), key=jax.random.key(1))
    assert logits.shape == (2, 5, 6) and bool(jnp.isfinite(logits).all())
    with pytest.raises(ValueError, match="slope"):  # the encoding's own option check
        TransformerConfig(
            vocab_size=6, width=8, num_heads=2, num_layers=1, encoding="linear_test",
            encoding_options={"slope": -1.0},
        )  # fmt: skip


def test_decorator_form_and_redefinition_of_the_same_class(registry):
    @register_encoding
    class Again(_Linear):
        name = "again_test"

    assert Again.name in list_encodings()

    @register_encoding
    class Again(_Linear):  # noqa: F811 - a re-run cell defines the same class again
        name = "again_test"
        takes_positions = False

    assert "again_test" in list_encodings() and "shifted_again_test" not in list_encodings()


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: _declared("rope"), "'rope' is already registered"),
        (lambda: _declared("positions_alibi"), "randomized_positions_alibi"),
        (lambda: _declared("Bad-Name"), "name"),
        (lambda: type("NoName", (_Linear,), {}), "name"),
        (lambda: _declared("shifted_x"), "must not start with"),
        (lambda: _declared("p_test", place="logit"), "place"),
        (lambda: _declared("t_test", takes_positions=1), "takes_positions"),
        (
            lambda: _declared("d_test", takes_positions=False, randomized_distances=True),
            "randomized_distances",
        ),  # fmt: skip
        (lambda: _declared("o_test", __init__=lambda self, num_heads, *, slope: None), "slope"),
        (lambda: int, "subclass of pe_jax.nn.Encoding"),
    ],
)
def test_bad_declarations_raise_naming_them(registry, make, field):
    before = list_encodings()
    with pytest.raises(ValueError, match="register_encoding") as info:
        register_encoding(make())
    assert field in str(info.value)
    assert list_encodings() == before


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ValueError, match="Did you mean 'rope'"):
        make_encoding("rop", width=8, num_heads=2, head_dim=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="Did you mean 'base'"):
        make_encoding("rope", width=8, num_heads=2, head_dim=4, rngs=nnx.Rngs(0), bse=1.0)
