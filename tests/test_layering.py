"""The package doors and the direction of imports, checked by walking every import with `ast`.

Rule 1: a private module `pe_jax.<pkg>._<module>` is imported only from inside `<pkg>`; every
other package, entry point and config goes through `pe_jax.<pkg>` (its `__init__`). Top-level
low modules (`pe_jax._validate`) serve every package.
Rule 2: imports run one way, down the layers; a package imports only the packages listed below
it in `ALLOWED`.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ("pe_jax", "experiments", "configs")

# package -> the pe_jax packages it may import (besides itself and the top-level low modules).
# Top-level modules (pe_jax/_validate.py, runfiles.py, loss.py, runtime.py, ...) count as
# packages named after the module. The lowest (names, config_fields, config_files,
# user_modules) import no JAX, so that config files load without it.
_CONFIG = {"config_fields", "config_files", "user_modules"}
_LOW = {"validate", "names", "encodings", "nn", "tasks", "loss", "runfiles", "compile"}
ALLOWED = {
    "names": set(),
    "config_fields": {"names"},
    "config_files": {"names"},
    "user_modules": {"names"},
    "validate": set(),
    "runfiles": set(),
    "rules": set(),
    "runtime": set(),
    "compile": set(),
    "encodings": {"validate"},
    "nn": {"validate", "names", "encodings"},
    "tasks": {"validate", "names"},
    "loss": {"nn", "tasks"},
    "reporting": {"validate", "encodings", "runfiles", "rules"},
    "evaluation": _LOW,
    "training": _LOW | _CONFIG | {"evaluation", "runtime"},
    "sweep": _LOW | _CONFIG | {"training", "runtime"},
    "explorer": _LOW - {"loss", "runfiles"} | {"evaluation", "training", "reporting"},
    # The science section trains a sweep's own run (its config file, expanded as sweeps do).
    "benchmark": _LOW | {"evaluation", "training", "sweep", "config_files"},
}


def _python_files():
    for top in SOURCES:
        yield from sorted((ROOT / top).rglob("*.py"))


def _imported_modules(tree: ast.AST):
    """Every absolute module an import statement names, with `from a import b` giving a.b too."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _owner(path: pathlib.Path) -> tuple[str, ...]:
    """('pe_jax', 'nn') for pe_jax/nn/_attention.py, ('pe_jax', '_validate') for a top-level
    module, ('pe_jax',) for pe_jax/__init__.py, ('experiments',) for experiments/x.py."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] != "pe_jax":
        return parts[:1]
    if parts[-1] == "__init__" and len(parts) <= 2:
        return ("pe_jax",)
    return parts[:2]


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "pe_jax" or len(parts) < 2:
        return None
    return parts[1].lstrip("_")


def test_sources_found():
    files = list(_python_files())
    assert len(files) > 50, files
    assert any(f.name == "_attention.py" for f in files)


@pytest.mark.parametrize("path", list(_python_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_private_modules_stay_inside_their_package(path):
    owner = _owner(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = []
    for line, module in _imported_modules(tree):
        parts = module.split(".")
        if parts[0] != "pe_jax":
            continue
        private = [
            i
            for i, part in enumerate(parts)
            if part.startswith("_") and not part.startswith("__") and i >= 2
        ]
        if not private:
            continue
        package = tuple(parts[: private[0]])  # the package the private module belongs to
        if owner[: len(package)] != package:
            bad.append(f"line {line}: {module}")
    assert not bad, f"{path.relative_to(ROOT)} reaches into private modules: {bad}"


@pytest.mark.parametrize(
    "path",
    [p for p in _python_files() if p.relative_to(ROOT).parts[0] == "pe_jax"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_imports_run_down_the_layers(path):
    owner = _owner(path)
    if len(owner) < 2:
        return  # pe_jax/__init__.py re-exports the encodings
    mine = owner[1].lstrip("_")
    assert mine in ALLOWED, f"{path.relative_to(ROOT)}: add its layer to ALLOWED"
    tree = ast.parse(path.read_text(), filename=str(path))
    allowed = ALLOWED[mine] | {mine}
    bad = sorted(
        {
            f"line {line}: {module}"
            for line, module in _imported_modules(tree)
            if (pkg := _package_of(module)) is not None and pkg not in allowed
        }
    )
    assert not bad, f"{path.relative_to(ROOT)} imports up or sideways: {bad}"


def test_the_rule_catches_a_violation(tmp_path):
    tree = ast.parse("from pe_jax.nn._attention import attend\nimport pe_jax.tasks._base\n")
    modules = [m for _, m in _imported_modules(tree)]
    assert "pe_jax.nn._attention" in modules and "pe_jax.tasks._base" in modules
    assert _package_of("pe_jax.nn._attention") == "nn"
    assert _package_of("pe_jax._validate") == "validate"


# Rule 3: no import circles between the modules of pe_jax, counting the imports inside
# functions (which hide a circle from Python but not from a reader). Known circles, to be
# removed by their owner: none may be added.
KNOWN_CIRCLES: set[frozenset[str]] = set()


def _module_of(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """{module: the pe_jax modules it imports}, every import statement anywhere in the file."""
    files = [p for p in _python_files() if p.relative_to(ROOT).parts[0] == "pe_jax"]
    modules = {_module_of(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = set()
        for _, imported in _imported_modules(tree):
            parts = imported.split(".")
            for end in range(len(parts), 0, -1):  # the longest prefix that is a module
                candidate = ".".join(parts[:end])
                if candidate in modules:
                    if candidate != name:
                        targets.add(candidate)
                    break
        graph[name] = targets
    return graph


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    circles = set(_circles(_import_graph()))
    assert circles <= KNOWN_CIRCLES, (
        f"import circles: {[sorted(c) for c in circles - KNOWN_CIRCLES]}"
    )


def test_the_circle_rule_catches_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [frozenset({"a", "b", "c"})]
