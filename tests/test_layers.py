"""The floors hold: no new arrow up, no new circle (tests/import_graph.py reads the imports).

The known lists are what the code had when the check was written; they may only shrink. An entry
that no longer exists fails too, so a list never keeps a fixed fault as an allowance.
"""

from __future__ import annotations

from tests.import_graph import Graph, floor_of

KNOWN_ARROWS_UP: set[tuple[str, str]] = set()
KNOWN_CIRCLES: list[list[str]] = []

GRAPH = Graph.read()


def test_no_new_arrow_runs_up_a_floor() -> None:
    assert set(GRAPH.upward()) - KNOWN_ARROWS_UP == set()


def test_no_new_circle() -> None:
    assert [c for c in GRAPH.circles() if c not in KNOWN_CIRCLES] == []


def test_the_known_lists_name_only_faults_still_there() -> None:
    assert KNOWN_ARROWS_UP - set(GRAPH.upward()) == set()
    assert [c for c in KNOWN_CIRCLES if c not in GRAPH.circles()] == []


def test_the_reader_sees_deferred_and_relative_imports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    package = tmp_path / "bot"
    (package / "inventory").mkdir(parents=True)
    (package / "planning").mkdir()
    for path in ("__init__.py", "inventory/__init__.py", "planning/__init__.py", "planning/plan.py"):
        (package / path).write_text("")
    (package / "inventory" / "stock.py").write_text(
        "def later():\n    from ..planning import plan\n")
    (package / "planning" / "forecast.py").write_text("from . import plan\nimport bot.inventory.stock\n")
    graph = Graph.read(package)
    assert ("bot.inventory.stock", "bot.planning.plan") in graph.upward()
    assert ("bot.planning.forecast", "bot.planning.plan") in graph.arrows
    assert ("bot.planning.forecast", "bot.inventory.stock") not in graph.upward()
    assert floor_of("bot.planning.forecast") > floor_of("bot.inventory.stock")
