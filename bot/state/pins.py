"""Slot pins in the state database: once a slot occurrence is given to a post, it stays."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.schedule.plan import Pin
from bot.state.db import slot_pins, utc_now_iso


class PinStore:
    """Read and write slot pins."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self) -> dict[str, Pin]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(slot_pins.c.post_id, slot_pins.c.slot, slot_pins.c.local))
            return {post: Pin(slot, datetime.fromisoformat(local)) for post, slot, local in rows}

    def save(self, pins: Mapping[str, Pin], keep: set[str] | None = None) -> None:
        """Store ``pins``; when ``keep`` is given, drop the pins of posts not in it."""
        now = utc_now_iso()
        with self.engine.begin() as conn:
            for post, pin in pins.items():
                stmt = sqlite_insert(slot_pins).values(
                    post_id=post, slot=pin.slot, local=pin.local.isoformat(), pinned_at=now
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[slot_pins.c.post_id],
                        set_={
                            "slot": stmt.excluded.slot,
                            "local": stmt.excluded.local,
                            "pinned_at": stmt.excluded.pinned_at,
                        },
                    )
                )
            if keep is not None:
                existing = conn.execute(select(slot_pins.c.post_id)).scalars().all()
                gone = [p for p in existing if p not in keep]
                if gone:
                    conn.execute(delete(slot_pins).where(slot_pins.c.post_id.in_(gone)))
