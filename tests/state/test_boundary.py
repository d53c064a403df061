"""The state package is the only SQL of diplobot: no module outside bot/state imports
SQLAlchemy or a database driver."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"
SQL = ("sqlalchemy", "sqlite3", "psycopg", "psycopg2")


def test_no_module_outside_the_state_package_imports_sql() -> None:
    """Every import of SQLAlchemy or a driver is under bot/state."""
    found = []
    for path in sorted(BOT.rglob("*.py")):
        if path.is_relative_to(BOT / "state"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [
                f"{path.relative_to(BOT.parent)}:{node.lineno}: {name}"
                for name in names
                if name.split(".")[0] in SQL
            ]
    assert found == []
    assert list((BOT / "state").glob("*.py")), "the state package moved"
