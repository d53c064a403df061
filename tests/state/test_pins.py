"""Slot pins are written in statements of many rows (a first start pins every slot post at
once); what is stored is what was given: new pins, pins moved to another occurrence, pins
dropped with ``keep``. On SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.schedule.plan import Pin
from bot.state import open_store
from bot.state.pins import Pins

DAY = datetime(2026, 12, 1, 9, 0)


def test_save_stores_many_pins_moves_them_and_drops_the_others(state_url: str) -> None:
    store = open_store(state_url)
    try:
        pins = Pins(store.engine)
        first = {f"post-{i:04d}": Pin("matin", DAY + timedelta(days=i % 28)) for i in range(250)}
        pins.save(first, keep=set(first))
        assert pins.load() == first  # 250 rows: three statements
        moved = {post: Pin("soir", pin.local + timedelta(hours=9)) for post, pin in first.items()}
        kept = dict(list(moved.items())[:130])
        pins.save(kept, keep=set(kept))
        assert pins.load() == kept
        pins.save({"post-9999": Pin("matin", DAY + timedelta(days=30))})  # no keep: the others stay
        assert pins.load() == {**kept, "post-9999": Pin("matin", DAY + timedelta(days=30))}
    finally:
        store.close()
