"""Config files by path or by name: "configs/copy.py:smoke", "copy:smoke", "sweeps/smoke".

A config file is a Python file with `get_config(arg)` (ml_collections' convention). It is named
by its path, or by its name in the `configs` package (its path there without ".py"), so that
"copy:smoke" and "configs/copy.py:smoke" work from any working directory, from a clone and
from an installed package alike. A low module: no JAX.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import ml_collections

from pe_jax._names import close_matches

PACKAGE = "configs"


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def config_names() -> dict[str, Path]:
    """The config files of the `configs` package by name ("copy", "sweeps/smoke", ...): every
    .py file there with a `get_config`."""
    root = _package_dir()
    if root is None:
        return {}
    names = {}
    for path in sorted(root.rglob("*.py")):
        if "def get_config" in path.read_text(encoding="utf-8", errors="replace"):
            names[path.relative_to(root).with_suffix("").as_posix()] = path
    return names


def _as_name(text: str) -> str:
    """ "configs/copy.py" -> "copy", "copy.py" -> "copy", "sweeps/smoke" stays."""
    name = text.replace(os.sep, "/").removesuffix(".py")
    return name.removeprefix("./").removeprefix(f"{PACKAGE}/")


def resolve_config_file(spec: str) -> tuple[Path, str | None]:
    """(file, arg) of `spec` = "<path or name>[:<arg>]".

    A path that exists (from the working directory) wins; otherwise the name, or the path
    read as one ("configs/copy.py" -> "copy"), is looked up in `config_names()`; a name found
    in no folder there may be a file name alone when only one file has it ("smoke" for
    "sweeps/smoke").

    Raises:
      ValueError: neither a file nor a config name, with the close matches.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"config must be a config file path or name, got {spec!r}.")
    where, sep, arg = spec.partition(":")
    arg = arg if sep else None
    if Path(where).is_file():
        return Path(where), arg
    names = config_names()
    name = _as_name(where)
    if name in names:
        return names[name], arg
    by_stem = [n for n in names if n.rpartition("/")[2] == name]
    if len(by_stem) == 1:  # "smoke" for "sweeps/smoke" when no other config is so named
        return names[by_stem[0]], arg
    as_path = where.endswith(".py") or "/" in where
    matches = close_matches(name, names)
    shown = [f"{PACKAGE}/{m}.py" if as_path else m for m in matches]
    hint = f" Did you mean {' or '.join(repr(m) for m in shown)}?" if shown else ""
    raise ValueError(
        f"config file {where!r} not found: no such file, and no config of that name.{hint} "
        f"Names: {', '.join(names) or 'none (the configs package is not importable)'}."
    )


def load_config(spec: str) -> ml_collections.ConfigDict:
    """The config of `spec` ("copy:smoke", "configs/copy.py:smoke", "my_config.py"):
    the file's `get_config(arg)` (called without an argument when `spec` has no ":").

    Raises:
      ValueError: an unknown file or name (see `resolve_config_file`), a file without
        `get_config`, or what `get_config` raises as ValueError (a bad preset, field or value),
        prefixed with the file.
    """
    path, arg = resolve_config_file(spec)
    module_spec = importlib.util.spec_from_file_location(f"_pe_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ValueError(f"config file {str(path)!r} has no get_config(arg) function.")
    try:
        return get_config(arg) if arg is not None else get_config()
    except ValueError as error:
        raise ValueError(f"{spec}: {error}") from None
