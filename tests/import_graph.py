"""Reads the imports of every module under `bot/` and holds them against the floors.

Floors, lowest first (docs/architecture.md): the base modules; inventory, shop and delivery;
planning and recovery; reports and ingest; the edges (handlers, api, sandbox, play, the CLI and
the composition root). A module may import its own floor and those below. Every import counts,
deferred ones and those under `TYPE_CHECKING` too: a deferred import hides an arrow, it does not
remove it.

    python tests/import_graph.py          # prints the arrows up and the circles

tests/test_layers.py fails on a circle or an arrow up that is not in its known list.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bot"

BASE, DOMAIN, PLANS, TOOLS, EDGES = range(5)
FLOOR_NAMES = {BASE: "base", DOMAIN: "inventory/shop/delivery", PLANS: "planning/recovery",
               TOOLS: "reports/ingest", EDGES: "edges"}

# The longest prefix decides. A top-level module not listed here is an edge.
FLOORS: dict[str, int] = {
    "bot": BASE,
    "bot.db": BASE, "bot.models": BASE, "bot.settings": BASE, "bot.logs": BASE,
    "bot.process": BASE, "bot.waiting": BASE, "bot.lazy_aiogram": BASE, "bot.leadership": BASE,
    "bot.migrate": BASE, "bot.migrations": BASE, "bot.events": BASE, "bot.csv_safe": BASE,
    "bot.seen_once": BASE, "bot.text_rules": BASE, "bot.pipeline": BASE, "bot.clock": BASE, "bot.memory": BASE,
    "bot.write_turns": BASE, "bot.sqlite_driver": BASE,
    "bot.inventory": DOMAIN, "bot.shop": DOMAIN, "bot.delivery": DOMAIN,
    "bot.planning": PLANS, "bot.recovery": PLANS,
    "bot.reports": TOOLS, "bot.ingest": TOOLS,
}


def floor_of(module: str) -> int:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in FLOORS and (end > 1 or module == "bot"):
            return FLOORS[prefix]
    return EDGES


def module_name(path: Path, root: Path = ROOT) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            # `from bot.planning import history` imports the module bot.planning.history
            yield from (f"{base}.{alias.name}" for alias in node.names)


@dataclass(frozen=True)
class Graph:
    modules: frozenset[str]
    arrows: frozenset[tuple[str, str]]

    @classmethod
    def read(cls, package: Path = PACKAGE) -> Graph:
        sources = {module_name(path, package.parent): path for path in package.rglob("*.py")}
        modules = frozenset(sources)
        arrows = set()
        for name, path in sources.items():
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for target in _imported(tree, name, path.name == "__init__.py"):
                if target in modules and target != name and not name.startswith(target + "."):
                    arrows.add((name, target))
        return cls(modules, frozenset(arrows))

    def upward(self) -> list[tuple[str, str]]:
        return sorted((a, b) for a, b in self.arrows if floor_of(b) > floor_of(a))

    def circles(self) -> list[list[str]]:
        """Strongly connected components of more than one module (Tarjan's algorithm)."""
        successors: dict[str, list[str]] = {m: [] for m in self.modules}
        for a, b in self.arrows:
            successors[a].append(b)
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []
        counter = 0

        sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

        def visit(node: str) -> None:
            nonlocal counter
            index[node] = low[node] = counter
            counter += 1
            stack.append(node)
            on_stack.add(node)
            for nxt in successors[node]:
                if nxt not in index:
                    visit(nxt)
                    low[node] = min(low[node], low[nxt])
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

        for module in sorted(self.modules):
            if module not in index:
                visit(module)
        return sorted(found)


def main() -> int:
    graph = Graph.read()
    up = graph.upward()
    circles = graph.circles()
    print(f"{len(graph.modules)} modules, {len(graph.arrows)} arrows")
    print(f"{len(up)} arrows up:")
    for a, b in up:
        print(f"  {a} ({FLOOR_NAMES[floor_of(a)]}) -> {b} ({FLOOR_NAMES[floor_of(b)]})")
    print(f"{len(circles)} circles:")
    for circle in circles:
        print("  " + " <-> ".join(circle))
    return 1 if up or circles else 0


if __name__ == "__main__":
    raise SystemExit(main())
