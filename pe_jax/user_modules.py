"""A config's `imports`: the user's modules that register encodings and tasks of their own.

An experiment config names them (config.imports: dotted module names or .py file paths), so
they travel with the run config to every process that trains it (sweep workers included), and
the run's config.json records where its encoding came from. A low module: no JAX.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from pe_jax._names import did_you_mean


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def _import_path(spec: str, where: str) -> ModuleType:
    path = Path(spec)
    if not path.is_file():
        folder = path.parent if path.parent.is_dir() else None
        nearby = [p.name for p in folder.glob("*.py")] if folder else []
        raise ValueError(
            f"{where}: no file {spec!r} (paths are read from the working directory "
            f"{Path.cwd()}).{did_you_mean(path.name, nearby)}"
        )
    resolved = path.resolve()
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").resolve() == resolved:
            return loaded
        raise ValueError(
            f"{where}: {spec!r} would be imported as module {name!r}, which is already another "
            f"module ({getattr(loaded, '__file__', None) or 'built in'}); rename the file."
        )
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look classes up by module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import_name(spec: str, where: str) -> ModuleType:
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if spec != missing and not spec.startswith(missing + "."):
            raise  # the module exists but imports something missing: its own bug
        known = [m.name for m in pkgutil.iter_modules()] if "." not in missing else []
        raise ValueError(
            f"{where}: no module named {missing!r}.{did_you_mean(missing, known)} A module is "
            "a dotted name importable from here, or a path to a .py file."
        ) from None


def import_modules(specs: Sequence[str] | None, *, where: str = "config.imports") -> list:
    """Imports each of `specs` (once per process) and returns the modules.

    A spec is a dotted module name ("my_pkg.my_encoding") or the path of a .py file (it ends
    in ".py" or holds a "/"; relative paths are read from the working directory), imported
    under its file name. Importing a module runs its `register_encoding` / `register_task`
    declarations.

    Raises:
      ValueError: a spec that is not text, a module that does not exist or a file that is not
        there (naming `where` and the spec, with the close matches), or a file whose name is
        another module's.
    """
    modules = []
    for i, spec in enumerate(specs or ()):
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"{where}[{i}] must be a module name or a .py path, got {spec!r}.")
        spec = spec.strip()
        modules.append(_import_path(spec, where) if _is_path(spec) else _import_name(spec, where))
    return modules
