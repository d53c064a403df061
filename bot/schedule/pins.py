"""Slot pins kept in the state database: once a slot occurrence is given to a post, it stays.

This table is the first piece of the ledger (see DESIGN.md); it uses the same SQLite file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from bot.schedule.plan import Pin

_SCHEMA = """
CREATE TABLE IF NOT EXISTS slot_pins (
    post_id   TEXT PRIMARY KEY,
    slot      TEXT NOT NULL,
    local     TEXT NOT NULL,   -- wall time of the occurrence, ISO, no offset
    pinned_at TEXT NOT NULL    -- UTC, ISO
)
"""


class PinStore:
    """Read and write slot pins in a SQLite file (created on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Pin]:
        if not self.path.exists():
            return {}
        with self._connect() as db:
            rows = db.execute("SELECT post_id, slot, local FROM slot_pins").fetchall()
        return {post: Pin(slot, datetime.fromisoformat(local)) for post, slot, local in rows}

    def save(self, pins: Mapping[str, Pin], keep: set[str] | None = None) -> None:
        """Store ``pins``; when ``keep`` is given, drop pins of posts not in it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC).isoformat()
        with self._connect() as db:
            db.executemany(
                "INSERT INTO slot_pins (post_id, slot, local, pinned_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(post_id) DO UPDATE SET slot = excluded.slot, local = excluded.local, "
                "pinned_at = excluded.pinned_at",
                [(post, pin.slot, pin.local.isoformat(), now) for post, pin in pins.items()],
            )
            if keep is not None:
                existing = [r[0] for r in db.execute("SELECT post_id FROM slot_pins")]
                db.executemany(
                    "DELETE FROM slot_pins WHERE post_id = ?",
                    [(p,) for p in existing if p not in keep],
                )

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        return db
