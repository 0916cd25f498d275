"""The one typed config setter: a field is parsed and checked alike however it is set.

A field of an experiment config can be set three ways: `configs/<task>.py:key=value`,
`--config.key=value`, and a sweep's overrides. All three go through `set_field`: the text is
parsed to the field's type (`parse_field`, with absl's number parsers, as
ml_collections.config_flags does; a Python value is checked against the type), then assigned
with ConfigDict's type-safe assignment. The option mappings (`OPTION_FIELDS`) are free-form:
`model.encoding_options.base=500` adds or replaces one option, which the encoding (or task)
checks with its own validation when the config is checked, before anything is written.

A low module: it imports absl and ml_collections only (no JAX), so config files load fast.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

import ml_collections
from absl import flags

from pe_jax._names import did_you_mean

# Free-form mappings of keyword options (a task's, an encoding's): their entries are whatever
# the task or encoding accepts, so a key=value may add one; the owner checks it.
OPTION_FIELDS = ("task_options", "encoding_options")
# Fields a config may lack, with their types: set_field adds one when it is first set, so
# the config.json of a run without it stays as it was (and its finished run is still found).
OPTIONAL_FIELDS = {"imports": tuple}
BOOL_TEXT = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_BOOL_ALLOWED = "true or false (text: true/false, 1/0, yes/no, any case)"


def _literal(text: str) -> Any:
    """A Python literal, or the text itself when it is not one (as config_flags does)."""
    try:
        return ast.literal_eval(text)
    except (SyntaxError, ValueError):
        return text


def _bool(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in BOOL_TEXT:
        return BOOL_TEXT[value.strip().lower()]
    raise ValueError(f"{name} must be {_BOOL_ALLOWED}, got {value!r}.")


def _int(name: str, value) -> int:
    if isinstance(value, str):
        try:
            return flags.IntegerParser().parse(value.strip())
        except ValueError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"{name} must be an integer, got {value!r}.")


def _float(name: str, value) -> float:
    if isinstance(value, str):
        try:
            return flags.FloatParser().parse(value.strip())
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{name} must be a number, got {value!r}.")


def _tuple(name: str, value) -> tuple:
    """Text "0;1" (";" because "," separates config arguments), "(0, 1)" or "[0, 1]"."""
    if isinstance(value, tuple | list):
        return tuple(value)
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in "([":
            parsed = _literal(text)
            if isinstance(parsed, tuple | list):
                return tuple(parsed)
        else:
            return tuple(_literal(item.strip()) for item in text.split(";") if item.strip())
    raise ValueError(f'{name} must be a tuple (text: "0;1" or "(0, 1)"), got {value!r}.')


def _config_dict(name: str, value) -> ml_collections.ConfigDict:
    if isinstance(value, str):
        value = _literal(value)
    if isinstance(value, ml_collections.ConfigDict):
        return value
    if isinstance(value, Mapping):
        return ml_collections.ConfigDict(dict(value))
    raise ValueError(f"{name} must be a mapping (text: a dict literal), got {value!r}.")


def _str(name: str, value) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"{name} must be a string, got {value!r}.")


_PARSERS = {bool: _bool, int: _int, float: _float, tuple: _tuple, str: _str}


def parse_field(name: str, value, field_type: type) -> Any:
    """Returns `value` as a value of a field of type `field_type`; text is parsed.

    bool fields take True/False or the text true/false, 1/0, yes/no (any case); int fields an
    int (not a bool) or integer text; float fields a number or number text; tuple fields a
    list/tuple or text "0;1" / "(0, 1)"; ConfigDict fields a mapping or a dict literal; fields
    of any other type (or set to None) take any value, text read as a Python literal when it is
    one. None, or the text "None" in a field that is not a string, is kept as None (it unsets
    a field such as train.clip_norm; the run's validation says which fields allow it).

    Raises:
      ValueError: naming `name`, the value and what the field allows.
    """
    if value is None or (field_type is not str and isinstance(value, str) and value == "None"):
        return None
    if field_type in _PARSERS:
        return _PARSERS[field_type](name, value)
    if isinstance(field_type, type) and issubclass(field_type, ml_collections.ConfigDict):
        return _config_dict(name, value)
    return _literal(value) if isinstance(value, str) else value


def field_type(config: ml_collections.ConfigDict, path: str) -> type | None:
    """The type of the existing dotted field `path` of `config`, or None when it is absent."""
    node = config
    *parents, leaf = path.split(".")
    for part in parents:
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            return None
        node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        return None
    return node.get_type(leaf)


def set_field(config: ml_collections.ConfigDict, path: str, value, *, where: str = "config"):
    """Sets the dotted field `path` of `config` to `value`, parsed by `parse_field`.

    The field must exist, except an optional top-level field (`OPTIONAL_FIELDS`, added with
    its type) and an entry of an option mapping (`OPTION_FIELDS`, e.g.
    "model.encoding_options.base"): that one is added or replaced, its text read as a Python
    literal when it is one, and left to the encoding's (or task's) own checks. A locked config
    (as config flags load it) stays locked.

    Args:
      config: the config to change in place.
      path: a dotted field name, e.g. "model.width".
      value: a Python value or text (as given on a command line).
      where: how error messages name the config ("config", "sweep.overrides", ...).

    Raises:
      ValueError: an unknown field (with the close matches), or a value the field's type does
        not allow, naming `<where>.<path>`, the value and what is allowed.
    """
    name = f"{where}.{path}"
    node = config
    *parents, leaf = path.split(".")
    for depth, part in enumerate(parents):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
            where_part = ".".join([where, *parents[:depth]])
            raise ValueError(
                f"{name} is not a field of the config: {where_part} has no {part!r}."
                + did_you_mean(part, known)
            )
        node = node[part]
    if parents and parents[-1] in OPTION_FIELDS and isinstance(node, ml_collections.ConfigDict):
        option = _literal(value) if isinstance(value, str) else value
        with node.unlocked():
            if leaf in node:
                del node[leaf]  # an option may change type (500 -> 500.0); its owner checks it
            node[leaf] = option
        return config
    if not parents and leaf in OPTIONAL_FIELDS and leaf not in node:
        parsed = parse_field(name, value, OPTIONAL_FIELDS[leaf])
        with node.unlocked():
            node[leaf] = parsed
        return config
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        raise ValueError(
            f"{name} is not a field of the config.{did_you_mean(leaf, known)} "
            f"Fields there: {known}."
        )
    parsed = parse_field(name, value, node.get_type(leaf))
    try:
        node[leaf] = parsed
    except TypeError as error:
        raise ValueError(f"{name} cannot be set to {value!r}: {error}") from None
    return config
