"""The one typed config setter: a field is parsed and checked alike however it is set.

A field of an experiment config can be set three ways: `configs/<task>.py:key=value`,
`--config.key=value`, and a sweep's overrides. All three go through `parse_field` (text -> the
field's type, with absl's flag parsers, as ml_collections.config_flags does; a Python value is
checked against the type) and then ConfigDict's type-safe assignment: `set_field` for the config
argument and the sweep, and the parsers `define_config_file` registers with
`ml_collections.config_flags` for the flags (which name the flag in their error).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

import ml_collections
from absl import flags
from ml_collections import config_flags
from ml_collections.config_flags import tuple_parser

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
    one. None is kept as None (it unsets a field such as train.clip_norm).

    Raises:
      ValueError: naming `name`, the value and what the field allows.
    """
    if value is None:
        return None
    if field_type in _PARSERS:
        return _PARSERS[field_type](name, value)
    if isinstance(field_type, type) and issubclass(field_type, ml_collections.ConfigDict):
        return _config_dict(name, value)
    return _literal(value) if isinstance(value, str) else value


def set_field(config: ml_collections.ConfigDict, path: str, value, *, where: str = "config"):
    """Sets the dotted field `path` of `config` to `value`, parsed by `parse_field`.

    Args:
      config: the config to change in place.
      path: a dotted field name, e.g. "model.width"; it must exist already.
      value: a Python value or text (as given on a command line).
      where: how error messages name the config ("config", "sweep.overrides", ...).

    Raises:
      ValueError: an unknown field, or a value the field's type does not allow, naming
        `<where>.<path>`, the value and what is allowed.
    """
    name = f"{where}.{path}"
    node = config
    *parents, leaf = path.split(".")
    for part in parents:
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            raise ValueError(f"{name} is not a field of the config.")
        node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        raise ValueError(f"{name} is not a field of the config; fields there: {known}.")
    parsed = parse_field(name, value, node.get_type(leaf))
    try:
        node[leaf] = parsed
    except TypeError as error:
        raise ValueError(f"{name} cannot be set to {value!r}: {error}") from None
    return config


class _FieldParser(flags.ArgumentParser):
    """`parse_field` as an absl parser for one field type (absl names the flag on error)."""

    def __init__(self, field_type: type):
        self.field_type = field_type

    def parse(self, argument):
        return parse_field("the value", argument, self.field_type)

    def flag_type(self) -> str:
        return self.field_type.__name__


class _TupleFieldParser(tuple_parser.TupleParser):
    """Tuples: config_flags passes repeated --config.seeds=0 --config.seeds=1 as a list."""

    def parse(self, argument):
        if isinstance(argument, list):
            return tuple(v for a in argument for v in parse_field("the value", a, tuple))
        return parse_field("the value", argument, tuple)


def define_config_file(name: str, default: str | None = None, help_string: str = "", **kwargs):
    """`config_flags.DEFINE_config_file` whose `--<name>.key=value` flags use `parse_field`.

    Registers this module's parsers for the field types of the experiment configs with
    ml_collections.config_flags (process-wide), then defines the flag.
    """
    for field_type in (bool, int, float, str, ml_collections.ConfigDict, object):
        config_flags.register_flag_parser_for_type(field_type, _FieldParser(field_type))
    config_flags.register_flag_parser_for_type(tuple, _TupleFieldParser())
    return config_flags.DEFINE_config_file(name, default, help_string, **kwargs)
