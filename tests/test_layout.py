"""The shape of the package: no import cycle in ``bot/``, and the pure stages (loading content,
planning, counting text) import no network client, no scheduler, no database and no state.

The import graph is read from the source (the AST of every module), not by importing it, so
a cycle or a forbidden import is named even when it happens to work at run time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOT = ROOT / "bot"

PURE = ("bot.content", "bot.schedule.plan", "bot.text")
"""The pure stages: a module whose name is one of these or starts with one of these and '.'."""

FORBIDDEN = (
    "tweepy",
    "deep_translator",
    "deepl",
    "sqlalchemy",
    "apscheduler",
    "requests",
    "bot.state",
    "bot.publish",
    # The registry (bot.platforms) gives the checks each platform's limits; its publishers are
    # the stages' business, not the pure ones'.
    "bot.platforms.x",
    "bot.platforms.outbox",
    # Today's state modules, until they move into bot.state:
    "bot.state.ledger",
    "bot.state.pins",
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(BOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported: its body, and blocks of it (if, try, with),
    not function bodies and not ``if TYPE_CHECKING:``."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _top_level_imports(node.body)
            yield from _top_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _top_level_imports(block)
            for handler in node.handlers:
                yield from _top_level_imports(handler.body)
        elif isinstance(node, ast.With):
            yield from _top_level_imports(node.body)


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The dotted names of the modules ``node`` (in ``module``) imports."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:
        package = module.split(".")
        if MODULES[module].name != "__init__.py":
            package.pop()
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    for alias in node.names:
        # ``from bot.content import loader`` imports the module bot.content.loader.
        sub = f"{base}.{alias.name}"
        yield sub if sub in MODULES else base


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[module] = {
            name for node in _top_level_imports(tree.body) for name in _imported(module, node)
        }
    return graph


def _every_import_graph() -> dict[str, set[str]]:
    """The same, with the imports deferred into function bodies too (they run on first call)."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[module] = {
            name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for name in _imported(module, node)
        }
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan); edges to modules
    outside ``graph`` (the standard library, third parties) are ignored."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v] & graph.keys()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path_through(graph, set(group)) for group in groups]


def _path_through(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest cycle from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & group):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return sorted(group)


def _is_pure(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in PURE)


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_the_reader_finds_known_edges_and_names_a_cycle() -> None:
    """The reader itself: edges that exist today are found, and a made-up cycle is named, so
    an empty answer below means no cycle, not a graph that missed every import."""
    graph = _graph()
    assert "bot.content.checks" in graph["bot.content.loader"]
    assert "bot.content.types" in graph["bot.schedule.plan"]
    assert "tweepy.asynchronous.client" in graph["bot.platforms.x"]
    made_up = {"m.a": {"m.b", "os"}, "m.b": {"m.c"}, "m.c": {"m.a"}, "m.d": {"m.a"}}
    assert _cycles(made_up) == [["m.a", "m.b", "m.c", "m.a"]]
    assert _cycles({"m.a": {"m.a"}}) == [["m.a", "m.a"]]


def test_no_import_cycle_in_bot() -> None:
    """No module of bot/ imports, at module level, a module that imports it back (directly or
    through others): each cycle is named, module by module."""
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_import_cycle_even_through_deferred_imports() -> None:
    """A cycle hidden by moving an import into a function is still one: modules that need
    each other belong together, or a third module holds what they share."""
    cycles = _cycles(_every_import_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_pure_stages_import_no_client_scheduler_database_or_state() -> None:
    """Loading, planning and text counting import (directly, at any level of the code) neither
    tweepy, deep-translator, DeepL, requests, SQLAlchemy, APScheduler, nor the state or the
    publishers: they run in ``diplobot validate`` and ``plan`` with no credentials."""
    found = []
    for module, path in MODULES.items():
        if not _is_pure(module):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                found += [
                    f"{module} imports {name}"
                    for name in _imported(module, node)
                    if _forbidden(name)
                ]
    assert not found, found


def test_importing_the_pure_stages_loads_none_of_those_libraries() -> None:
    """The same at run time, through every module they import in turn: a fresh interpreter
    that imports every pure module has loaded none of the forbidden ones."""
    pure = sorted(m for m in MODULES if _is_pure(m))
    code = (
        "import importlib, sys\n"
        f"for name in {pure!r}:\n"
        "    importlib.import_module(name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = [name for name in done.stdout.split() if _forbidden(name)]
    assert not loaded, loaded


LOADERS = ("bot.cli", "bot.service", "bot.pipeline", "bot.content")
"""The modules that load content; every other one receives a ContentSet."""


def test_only_the_loading_stages_import_the_loader() -> None:
    """Later stages need ContentSet and PostEntry, not the loader: they import
    bot.content.types, which pulls in none of the checks."""
    graph = _every_import_graph()
    importers = sorted(
        m
        for m, names in graph.items()
        if "bot.content.loader" in names
        and not any(m == p or m.startswith(p + ".") for p in LOADERS)
    )
    assert not importers, importers
    heavy = {"bot.content.loader", "bot.content.checks", "bot.content.shape", "yaml"}
    assert not (graph["bot.content.types"] & heavy)
