"""`register_encoding`: the registry of encoding names, built from the adapters' declarations.

An encoding is one class: it declares its `name`, its `place` and whether it `takes_positions`
(see `Encoding`), and `@register_encoding` records it. The randomized and shifted variants of an
encoding that takes positions are derived from that flag, never listed by hand.
"""

from __future__ import annotations

import inspect
import re

from pe_jax._names import did_you_mean
from pe_jax.nn._base import PLACES, Encoding

# Constructor arguments supplied by the model rather than by options.
STRUCTURAL = ("width", "num_heads", "head_dim", "causal", "rngs")
# Prefixes of the derived variants (see `variant_names`); no declared name may start with them.
VARIANT_PREFIXES = ("randomized_", "shifted_")
POSITIONS_PREFIX = "randomized_positions_"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# declared name -> adapter class
_CLASSES: dict[str, type[Encoding]] = {}
# every registered name -> (mode, declared name); mode: None (the class itself), "sorted"
# (randomized positions), "shift" (shifted positions) or "distances" (randomized distances).
_NAMES: dict[str, tuple[str | None, str]] = {}


def registered_names() -> list[str]:
    """Every registered name, sorted."""
    return sorted(_NAMES)


def lookup(name: str) -> tuple[str | None, type[Encoding]] | None:
    """(mode, adapter class) of a registered `name` (mode as in `variant_names`), else None."""
    if not isinstance(name, str) or name not in _NAMES:
        return None
    mode, base = _NAMES[name]
    return mode, _CLASSES[base]


def variant_names(cls: type[Encoding]) -> dict[str, tuple[str | None, str]]:
    """The names a declared class registers: its own, and with `takes_positions`
    "randomized_<name>" and "shifted_<name>" (plus "randomized_positions_<name>" with
    `randomized_distances`), each mapped to (mode, name)."""
    base = cls.name
    names = {base: (None, base)}
    if cls.takes_positions:
        names[f"randomized_{base}"] = ("distances" if cls.randomized_distances else "sorted", base)
        names[f"shifted_{base}"] = ("shift", base)
        if cls.randomized_distances:
            names[POSITIONS_PREFIX + base] = ("sorted", base)
    return names


def option_parameters(cls: type[Encoding]) -> dict[str, inspect.Parameter]:
    """The constructor's named parameters (structural ones included), without *args/**kwargs."""
    params = inspect.signature(cls.__init__).parameters
    return {
        n: p
        for n, p in params.items()
        if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _check_declaration(cls) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Encoding)):
        raise ValueError(
            f"register_encoding: cls must be a subclass of pe_jax.nn.Encoding, got {cls!r}."
        )
    what = f"register_encoding({cls.__qualname__})"
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"{what}: the class must declare name, a registry name of lower-case letters, "
            f"digits and _ (its own, not inherited), got {name!r}."
        )
    if name.startswith(VARIANT_PREFIXES):
        raise ValueError(
            f"{what}: name must not start with {VARIANT_PREFIXES} (the derived variants' "
            f"prefixes; declare takes_positions=True instead), got {name!r}."
        )
    if cls.place not in PLACES:
        raise ValueError(
            f"{what}: place must be one of {PLACES}, got {cls.place!r}."
            + did_you_mean(cls.place, PLACES)
        )
    for flag in ("takes_positions", "randomized_distances"):
        if not isinstance(getattr(cls, flag), bool):
            raise ValueError(f"{what}: {flag} must be True or False, got {getattr(cls, flag)!r}.")
    if cls.randomized_distances and not cls.takes_positions:
        raise ValueError(f"{what}: randomized_distances=True needs takes_positions=True.")
    required = [
        n
        for n, p in option_parameters(cls).items()
        if n not in STRUCTURAL and p.default is inspect.Parameter.empty
    ]
    if required:
        raise ValueError(
            f"{what}: every option needs a default (options come from configs), got none for "
            f"{required}; the model supplies only {STRUCTURAL}."
        )


def _same_definition(a: type, b: type) -> bool:
    """The same class defined again (a re-run notebook cell, a reloaded module)."""
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def register_encoding(cls: type[Encoding]) -> type[Encoding]:
    """Registers an encoding adapter class under its declared name; returns the class.

    Use it as a decorator (``@register_encoding``) or call it (``register_encoding(MyBias)``).
    The name is then usable everywhere a built-in one is: `make_encoding`, `TransformerConfig`,
    an experiment config's model.encoding, a sweep's encodings (with the defining module in
    the config's `imports`, so that every process imports it).

    The class subclasses `pe_jax.nn.Encoding` and declares, as class attributes:
      name: the registry name (lower-case letters, digits, "_"), declared by the class itself.
      place: one of "input", "query_key", "logits", "content", "data_dependent".
      takes_positions: True when it reads 1-D integer positions; "randomized_<name>" and
        "shifted_<name>" are then registered too (they replace the positions it is fed).
      randomized_distances (optional, default False): see `Encoding`.
    Its constructor takes any of the structural arguments the model passes (width D,
    num_heads H, head_dim K, causal, rngs: nnx.Rngs, by those names) and keyword options,
    each with a default, which configs set as model.encoding_options. It overrides the hooks
    of its place; every other hook is the identity. Positions are int32, [L] or [B, L] (keys:
    [S] or [B, S]); a bias without a batch axis is [1, H, L, S]:
      embed(x [B, L, D], positions) -> [B, L, D]                           (input)
      rotate(q [B, L, H, K], k [B, S, H, K], q_positions, k_positions) -> (q, k), same shapes
                                                                           (query_key)
      bias(q_positions, k_positions) -> float32 [1|B, H, L, S] or None, added to the scaled
        logits                                                             (logits)
      content_logits(q, k, q_positions, k_positions, *, mask) -> float32 [B, H, L, S] or None,
        added to q.k before the 1/sqrt(K) scaling; declare uses_content = True   (content)
      input_bias(x [B, L, D], q, k, q_positions, k_positions) -> float32 [B, 1|H, L, S] or
        None, added like bias                                              (data_dependent)
    Constructor checks raise ValueError naming the option; `check_options` runs them before
    anything is trained.

    Raises:
      ValueError: a bad declaration (not an Encoding subclass, a missing or malformed name, a
        place not in PLACES, a non-bool flag, an option without a default), or a name (or a
        derived variant's name) already registered by another class; each naming the class
        and the field.
    """
    _check_declaration(cls)
    names = variant_names(cls)
    previous = _CLASSES.get(cls.name)
    if previous is not None and _same_definition(previous, cls):
        for name in variant_names(previous):
            del _NAMES[name]
    elif previous is not None:
        raise ValueError(
            f"register_encoding({cls.__qualname__}): name {cls.name!r} is already registered "
            f"by {previous.__module__}.{previous.__qualname__}; choose another name."
        )
    taken = sorted(n for n in names if n in _NAMES)
    if taken:
        raise ValueError(
            f"register_encoding({cls.__qualname__}): the names {taken} are already registered."
        )
    _CLASSES[cls.name] = cls
    _NAMES.update(names)
    return cls
