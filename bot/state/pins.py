"""Slot pins in the state database: once a slot occurrence is given to a post, it stays."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Engine, delete, select

from bot.schedule.plan import Pin
from bot.state.dialect import upsert_rows
from bot.state.tables import slot_pins, utc_now


class Pins:
    """Read and write slot pins."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self) -> dict[str, Pin]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(slot_pins.c.post_id, slot_pins.c.slot, slot_pins.c.local))
            return {post: Pin(slot, local) for post, slot, local in rows}

    def save(self, pins: Mapping[str, Pin], keep: set[str] | None = None) -> None:
        """Store ``pins``; when ``keep`` is given, drop the pins of posts not in it."""
        now = utc_now()
        rows = [
            {"post_id": post, "slot": pin.slot, "local": pin.local, "pinned_at": now}
            for post, pin in pins.items()
        ]
        with self.engine.begin() as conn:
            # Many rows a statement: a first start pins every slot post at once (~500 at 10k).
            upsert_rows(
                conn, slot_pins, rows, key=["post_id"], update=["slot", "local", "pinned_at"]
            )
            if keep is not None:
                existing = conn.execute(select(slot_pins.c.post_id)).scalars().all()
                gone = [p for p in existing if p not in keep]
                if gone:
                    conn.execute(delete(slot_pins).where(slot_pins.c.post_id.in_(gone)))
