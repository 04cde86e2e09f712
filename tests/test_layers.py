"""The package's shape (docs/design.md): the floors, checked by import-linter, and the measures, checked here.

The contracts live in ``.importlinter`` at the repository root; ``lint-imports`` reads every import from the source
(function-local ones too; ``if TYPE_CHECKING:`` blocks, which never run, are left out). The measures are read from
the source with ``ast``: the package root's size, module and class lengths, where space and method names may be
compared, and where a speed path may be named.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "drnas"

MAX_ROOT_ENTRIES = 20
MAX_MODULE_LINES = 520
MAX_CLASS_LINES = 380

#: the jobs: they reach the speed paths through ``drnas.fast`` alone
JOBS = ("search.py", "table_search.py", "train.py", "result.py")
#: the packages that name no speed path at all
PLAIN = ("method", "spaces", "engine")


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


MODULES = sorted(PACKAGE.rglob("*.py"), key=_relative)


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _under(path: Path, folder: str) -> bool:
    return _relative(path).startswith(folder + "/")


def test_the_import_contracts_hold():
    """The floors, no cycles, the one door to the speed paths, nothing importing the CLI (``.importlinter``)."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    report = subprocess.run([str(lint_imports), "--config", str(ROOT / ".importlinter"), "--no-cache", "--no-logo"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, f"lint-imports failed:\n{report.stdout}{report.stderr}"


def test_no_import_cycle_through_a_package_init():
    """The cycles import-linter's ``acyclic_siblings`` cannot see: it compares a package's children, so a module
    that imports its own package's ``__init__``, which imports it back, passes. The root ``drnas`` gathers the
    public names and is left out (Python runs a parent's ``__init__`` first anyway)."""
    import grimp

    graph = grimp.build_graph("drnas", exclude_type_checking_imports=True)
    cycles = sorted(f"{module} -> {imported}" for module in graph.modules if module != "drnas"
                    for imported in graph.find_modules_directly_imported_by(module)
                    if imported != "drnas" and module in graph.find_upstream_modules(imported))
    assert not cycles, f"imports that close a cycle: {cycles}"


def test_the_package_root_stays_small():
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= MAX_ROOT_ENTRIES, f"{len(entries)} entries in src/drnas/: {entries}"


def _one_space_file(path: Path) -> bool:
    """A file of ``spaces/`` that registers exactly one space: it owns all that space's facts and may stay whole."""
    if not _under(path, "spaces"):
        return False
    calls = [node for node in ast.walk(_tree(path)) if isinstance(node, ast.Call)
             and (getattr(node.func, "id", None) or getattr(node.func, "attr", None)) == "register_space"]
    return len(calls) == 1


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_no_module_is_too_long(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES or _one_space_file(path), f"{_relative(path)} has {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_no_class_is_too_long(path):
    if _one_space_file(path):
        return
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(_tree(path))
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES]
    assert not long, f"classes over {MAX_CLASS_LINES} lines in {_relative(path)}: {long}"


@cache
def _registered_names() -> dict[str, tuple[str, frozenset[str]]]:
    """``{kind: (the folder that may compare its names, the names)}``."""
    from drnas.method.strategies import method_names
    from drnas.spaces import space_names

    return {"space": ("spaces", frozenset(space_names())), "method": ("method/strategies", frozenset(method_names()))}


def _compared_strings(tree: ast.AST):
    """``(line, string)`` for each string constant compared (``==``, ``!=``, ``in``, ``not in``; also inside a set,
    tuple, list or dict literal on either side) or matched by a ``case``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                items = operand.keys if isinstance(operand, ast.Dict) else (
                    operand.elts if isinstance(operand, (ast.Set, ast.Tuple, ast.List)) else [operand])
                for item in items:
                    if isinstance(item, ast.Constant) and isinstance(item.value, str):
                        yield node.lineno, item.value
        elif isinstance(node, ast.MatchValue) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, str):
                yield node.lineno, node.value.value


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_names_are_compared_only_where_they_are_registered(path):
    """A space's name is compared only inside ``spaces/``, a method's only inside ``method/strategies/``: everywhere
    else the code asks the space or the method. A name of two kinds ("darts") may be compared in either home."""
    found = []
    for line, text in _compared_strings(_tree(path)):
        kinds = [kind for kind, (_, names) in _registered_names().items() if text in names]
        if kinds and not any(_under(path, _registered_names()[kind][0]) for kind in kinds):
            found.append(f"l.{line}: {text!r} ({' and '.join(kinds)} name)")
    assert not found, f"{_relative(path)} compares registered names: {found}"


def _no_speed_path_here(path: Path) -> bool:
    return any(_under(path, folder) for folder in PLAIN) or _relative(path) in JOBS


@pytest.mark.parametrize("path", [p for p in MODULES if _no_speed_path_here(p)], ids=_relative)
def test_no_speed_path_is_named(path):
    """``method/``, ``spaces/`` and ``engine/`` import nothing of ``drnas.fast``; the jobs import only the door's
    public names (``drnas.fast.__all__``), no module of it. None of them names a switch of the switchboard."""
    import drnas.fast
    from drnas.fast.settings import switch_names

    job = _relative(path) in JOBS
    door = set(getattr(drnas.fast, "__all__", ()))
    switches = set(switch_names())
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found += [f"l.{node.lineno}: import {a.name}" for a in node.names
                      if a.name.startswith("drnas.fast") and not (job and a.name == "drnas.fast")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("drnas.fast"):
            allowed = job and node.module == "drnas.fast"
            found += [f"l.{node.lineno}: from {node.module} import {a.name}" for a in node.names
                      if not (allowed and a.name in door)]
        name = (node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute)
                else node.arg if isinstance(node, ast.keyword) else None)
        if name in switches:
            found.append(f"l.{node.lineno}: the switch {name}")
    assert not found, f"{_relative(path)} names speed paths: {found}"


def _registries():
    from drnas.config.presets import SEARCH_PRESETS
    from drnas.config.train import PROTOCOLS
    from drnas.method.strategies import METHODS
    from drnas.spaces.archs import ARCHITECTURES
    from drnas.spaces.base import SPACES
    from drnas.spaces.ops import OPS

    return {"method": METHODS, "search space": SPACES, "op": OPS, "architecture name": ARCHITECTURES,
            "preset": SEARCH_PRESETS._presets, "training protocol": PROTOCOLS._presets}


@pytest.mark.parametrize("kind", ["method", "search space", "op", "architecture name", "preset", "training protocol"])
def test_every_registry_is_the_one_registry_type(kind):
    """One lookup behaviour everywhere: an unknown name is a one-line error of the domain's type (a DrnasError,
    so the CLI prints it as ``drnas: error: ...``) listing the known names; a taken name is refused."""
    from drnas.errors import DrnasError
    from drnas.registry import Registry, RegistryError

    registry = _registries()[kind]
    assert isinstance(registry, Registry) and registry.kind == kind and len(registry) > 0
    with pytest.raises(DrnasError) as info:
        registry.get("no-such-name")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"unknown {kind} 'no-such-name'; known: ")
    assert all(name in message for name in registry.names())
    with pytest.raises(RegistryError, match="already registered"):
        registry.register(registry.names()[0], registry.get(registry.names()[0]))
