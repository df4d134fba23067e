"""The import graph: no cycles, and no import that runs back up a floor.

Each part of ``src/helios`` stands on a floor; a module may import what stands on its own
floor or below, never above. Within a floor, parts may import each other only one way
(the package graph must stay acyclic), and no two modules may import each other in a loop.
Every import counts, at module level or inside a function, under ``TYPE_CHECKING`` or not:
a lazy import that runs back up is still a dependency on the floor above.

A new module in a part that is not listed here fails the test until someone decides where
it stands.
"""

from __future__ import annotations

import ast
import graphlib
from collections import defaultdict
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "src"

FLOORS: tuple[tuple[str, ...], ...] = (
    # the ground: typed data, errors, settings and the small database helpers
    (
        "helios._version",
        "helios.errors",
        "helios.messages",
        "helios.catalog",
        "helios.config",
        "helios.sqlite_db",
        "helios.postgres_db",
        "helios.data",
        "helios.percentiles",
        "helios.retries",
        "helios.breaker",
    ),
    # what talks to the outside world: model providers, embedders, the event store, the
    # simulator, the API key store
    ("helios.providers", "helios.embeddings", "helios.ledger", "helios.sim", "helios.keys"),
    # the parts one call composes, and the analyses of the ledger
    ("helios.cache", "helios.governance", "helios.analysis"),
    # the engine composes one call; ops watches the ledger
    ("helios.engine", "helios.call_events", "helios.ops"),
    # the one assembly point
    ("helios.runtime",),
    # callers of the runtime
    ("helios.pipeline",),
    # durable tasks run the pipelines
    ("helios.tasks",),
    ("helios.server",),
    ("helios.cli",),
    # the public API re-exports from everywhere
    ("helios",),
)
FLOOR_OF = {part: floor for floor, parts in enumerate(FLOORS) for part in parts}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str:
    """The listed part a module belongs to: the longest listed prefix."""
    candidates = [p for p in FLOOR_OF if module == p or module.startswith(p + ".")]
    if module == "helios":
        return "helios"
    candidates = [p for p in candidates if p != "helios"]
    if not candidates:
        raise AssertionError(f"{module} belongs to no floor: add its part to FLOORS")
    return max(candidates, key=len)


def imports_of(path: Path, module: str) -> set[str]:
    """The ``helios`` modules that ``path`` imports, anywhere in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # ``from helios.x import y`` may name a submodule y
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "helios" or name.startswith("helios.")}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in SOURCE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        graph[module] = {name for name in imports_of(path, module) if name in files} - {module}
    return graph


GRAPH = import_graph()


def test_every_module_stands_on_a_floor() -> None:
    for module in GRAPH:
        part_of(module)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} (floor {FLOOR_OF[part_of(module)]}) imports {target} "
        f"(floor {FLOOR_OF[part_of(target)]})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if FLOOR_OF[part_of(target)] > FLOOR_OF[part_of(module)]
    ]


def test_no_import_runs_back_up() -> None:
    assert upward_imports(GRAPH) == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def test_no_module_cycle() -> None:
    # a package's __init__ re-exporting its own submodules is a face, not a cycle
    graph = {
        module: {t for t in targets if not module.startswith(f"{t}.")}
        for module, targets in GRAPH.items()
    }
    assert _cycle(graph) is None


def test_no_cycle_between_parts() -> None:
    parts: dict[str, set[str]] = defaultdict(set)
    for module, targets in GRAPH.items():
        source = part_of(module)
        parts[source].update(part_of(t) for t in targets if part_of(t) != source)
    assert _cycle(dict(parts)) is None


@pytest.mark.parametrize(
    ("module", "target"),
    [("helios.cache.manager", "helios.engine"), ("helios.config.settings", "helios.runtime")],
)
def test_the_check_sees_an_upward_import(module: str, target: str) -> None:
    assert upward_imports({module: {target}}) != []
    assert upward_imports({target: {module}}) == []


def test_the_check_sees_a_cycle() -> None:
    assert _cycle({"helios.a": {"helios.b"}, "helios.b": {"helios.a"}}) is not None
    assert _cycle({"helios.a": {"helios.b"}, "helios.b": set()}) is None
