# ruff: noqa  (run with the release's code: its imports are not this tree's)
"""Make ``release-schema5.sqlite``: a state file as diplobot 2b7de57 (schema 5, before
bot/state existed) writes it, with a row in every table and deliveries in most states.

Run with that release's code, not this tree's (its modules are bot.store, bot.schedule.ledger…):
see README.md beside it.
"""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, sys.argv[1])

from bot.publish.watch import Presence  # noqa: E402
from bot.schedule.ledger import Instance, Ledger, MediaRef, NewDelivery, State  # noqa: E402
from bot.schedule.pins import PinStore  # noqa: E402
from bot.schedule.plan import Pin  # noqa: E402
from bot.service import set_pause  # noqa: E402
from bot.store import open_store  # noqa: E402
from bot.translate.cache import CacheKey, TranslationCache, text_hash  # noqa: E402

out = Path(sys.argv[2]).resolve()
out.unlink(missing_ok=True)
engine = open_store(f"sqlite:///{out}")
me = Instance("release00001", "release-host", 4242, "pid:[4026531836]")
ledger = Ledger(engine, lease=timedelta(seconds=60), instance=me)
due = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def item(post: str, part: int = 1, account: str = "francediplo", lang: str = "fr") -> NewDelivery:
    return NewDelivery(
        post,
        account,
        part,
        "x",
        lang,
        due + timedelta(minutes=part - 1),
        f"{post} {part} é",
        media=(MediaRef("media/a.jpg", "Le ministre"),) if post == "with-media" else (),
        revision="0123456789abcdef0123456789abcdef01234567",
        author="Desk <desk@example.org>",
    )


rows = {
    r.post_id: r
    for r in ledger.ensure(
        [item(p) for p in ("pending", "sending", "posted", "failed", "retry", "unknown", "by-hand")]
        + [item("with-media", 1, "francediplo_EN", "en"), item("thread", 1), item("thread", 2)]
    )
}
ledger.hold([item("held")], "translation failed: timeout", due - timedelta(hours=1))
now = datetime(2026, 11, 24, 7, 59, 30, 123456, tzinfo=UTC)
for post in ("sending", "posted", "failed", "retry", "unknown"):
    assert ledger.claim(rows[post].id, now) is not None
ledger.transition(
    rows["posted"].id,
    State.POSTED,
    expect=[State.SENDING],
    remote_id="1860000000000000001",
    url="https://x.com/francediplo/status/1860000000000000001",
)
ledger.transition(
    rows["failed"].id, State.FAILED, expect=[State.SENDING], error="X refused the text (403)"
)
ledger.transition(
    rows["retry"].id,
    State.PENDING,
    expect=[State.SENDING],
    error="429",
    retry_at=datetime(2026, 11, 24, 8, 15, 0, 500000, tzinfo=UTC),
)
ledger.transition(rows["unknown"].id, State.UNKNOWN, expect=[State.SENDING], error="timeout")
ledger.arm_by_hand([rows["by-hand"].id])
for row in rows.values():
    ledger._beat.release(row.id)  # the heartbeat thread ends ("sending" stays SENDING)
PinStore(engine).save({"slotted": Pin("morning", datetime(2026, 11, 25, 9, 30))})
cache = TranslationCache(engine)
cache.put(CacheKey("libre", "fr", "en", text_hash("Bonjour"), "g1"), "Hello")
set_pause(engine, "francediplo_AR", "travaux", True)
set_pause(engine, None, "", True)
presence = Presence(engine, timedelta(seconds=60), instance=me)
presence.beat(now)
with engine.begin() as conn:  # the sweep's mark, as Service.sweep writes it
    conn.exec_driver_sql("INSERT INTO heartbeat (name, at) VALUES ('sweep', ?)", (now.isoformat(),))
ledger._hot.connection().__enter__().close()  # the ledger's shared connection
engine.dispose()
with closing(sqlite3.connect(out)) as conn:  # one file, no -wal beside it
    conn.execute("PRAGMA journal_mode=DELETE")
print(out)
