"""Imports are honest: the project's modules import what they use at the top.

An import inside a function is allowed only where it earns its place (it keeps a heavy or
optional library out of DAG parsing, breaks an import cycle, or picks the Airflow version's
name), and then it says so on the line above: ``# lazy: <reason>``. Which lazy imports DAG
parsing really needs is guarded by ``tests/unit/dags/test_parse_cost.py``; this test keeps
the others from creeping back unexplained.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_clova"
MARK = "# lazy:"


def _has_reason(line: str) -> bool:
    text = line.strip()
    return text.startswith(MARK) and len(text) > len(MARK) + 3


def _local_imports(tree: ast.AST) -> Iterator[tuple[ast.stmt, list[ast.AST]]]:
    """Each import inside a function body, with the statements enclosing it (innermost last)."""

    def walk(node: ast.AST, chain: list[ast.AST], in_function: bool) -> Iterator[tuple[ast.stmt, list[ast.AST]]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # for the type checker only; never runs
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import | ast.ImportFrom) and in_function:
                yield child, chain
            yield from walk(child, [*chain, child], inside)

    yield from walk(tree, [], False)


def _marked(node: ast.stmt, chain: list[ast.AST], lines: list[str]) -> bool:
    """Marked on the line above the import, above a block of imports it belongs to, or above
    the ``try``/``if`` that picks between two imports."""
    if MARK in lines[node.lineno - 1]:
        return _has_reason(lines[node.lineno - 1][lines[node.lineno - 1].index(MARK) :])
    anchors: list[ast.AST] = [node]
    for parent in reversed(chain):
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef):
            break
        if isinstance(parent, ast.Try | ast.If | ast.ExceptHandler):
            anchors.append(parent)
    for anchor in anchors:
        line = anchor.lineno - 2  # type: ignore[attr-defined]
        # a run of imports shares the mark of its first one
        while line >= 0 and lines[line].strip().startswith(("import ", "from ")):
            line -= 1
        if line >= 0 and _has_reason(lines[line]):
            return True
    return False


def _unexplained(path: Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    return [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}"
        for node, chain in _local_imports(ast.parse(source))
        if not _marked(node, chain, lines)
    ]


def test_every_import_inside_a_function_says_why_it_is_not_at_the_top() -> None:
    found = [where for path in sorted(PACKAGE.rglob("*.py")) for where in _unexplained(path)]
    assert found == [], "move these to the top, or add '# lazy: <reason>' on the line above:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    import json\n", 1),
        ("def f():\n    # lazy:\n    import json\n", 1),  # a mark without a reason
        ("def f():\n    # lazy: heavy\n    import json\n    import csv\n", 0),
        ("def f():\n    # lazy: heavy\n    x = 1\n    import json\n", 1),
        ("def f():\n    import json  # lazy: heavy\n", 0),
        ("def f():\n    # lazy: moved\n    try:\n        import a\n    except ImportError:\n        import b\n", 0),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import json\n", 0),
        ("import json\n", 0),
    ],
)
def test_the_check_itself(source: str, expected: int) -> None:
    """The rule bites: an unexplained local import is reported, a reasoned one is not."""
    lines = source.splitlines()
    found = [node for node, chain in _local_imports(ast.parse(source)) if not _marked(node, chain, lines)]
    assert len(found) == expected
