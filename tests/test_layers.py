"""The package's layering (docs/design.md): no import cycles, and the method code reaches no speed path.

Read from the source with ``ast``, so the test sees the structure rather than what happens to be imported
already. Every import counts, function-local ones too (a cycle hidden in a function is still a cycle); only
``if TYPE_CHECKING:`` blocks, which never run, are left out.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: the paper's math and the spaces: the readable path
METHOD = ("drnas.method.relax", "drnas.method.supernet", "drnas.method.strategies", "drnas.spaces")
#: the speed paths, installed onto a network from outside
FAST = ("drnas.fast.settings", "drnas.fast.ops", "drnas.fast.fusion", "drnas.fast.compile_check", "drnas.fast.host_memory")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(module: str) -> bool:
    base = SRC.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: the drnas modules it imports}``."""
    graph: dict[str, set[str]] = {}
    for path in sorted((SRC / "drnas").rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("drnas"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if not source.startswith("drnas"):
                    continue
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{source}.{alias.name}"
                    targets.add(sub if _exists(sub) else source)
        graph[name] = {t for t in targets if t != name}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert "drnas.fast.fusion" in graph["drnas.search"] and "drnas.method.supernet" in graph["drnas.fast.fusion"]
    assert {"drnas.spaces.nb201", "drnas.spaces.darts"} <= graph["drnas.spaces"]


def test_no_import_cycles():
    graph = import_graph()
    for module in graph:
        if module == "drnas":  # the package's __init__ gathers everything; its submodules never import it
            continue
        assert module not in _reachable(graph, module), f"{module} imports itself through a cycle"


@pytest.mark.parametrize("module", sorted(m for m in import_graph() if _in(m, METHOD)))
def test_method_code_imports_no_speed_path(module):
    fast = sorted(m for m in _reachable(import_graph(), module) if _in(m, FAST))
    assert not fast, f"{module} reaches the speed paths {fast}"


def _registries():
    from drnas.spaces.archs import ARCHITECTURES
    from drnas.config.search import SEARCH_PRESETS
    from drnas.spaces.base import SPACES
    from drnas.spaces.ops import OPS
    from drnas.method.strategies import METHODS
    from drnas.train import PROTOCOLS

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
