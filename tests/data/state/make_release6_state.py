# ruff: noqa  (run with the release's code: its imports are not this tree's)
"""Make ``release-schema6.sqlite``: a state file as diplobot 713aa3e (schema 6, the release
before issue 12's missions, reposts and lease) writes it, with a row in every table and
deliveries in most states, on X and on the platforms of issue 11 (a Weibo task for a person
and a Telegram delivery left for a person to check are UNKNOWN with their markers).

Run with that release's code, not this tree's: see README.md beside it.
"""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, sys.argv[1])

from bot.schedule.plan import Pin  # noqa: E402
from bot.state import open_store  # noqa: E402
from bot.state.ledger import Instance, MediaRef, NewDelivery, State  # noqa: E402
from bot.state.translations import CacheKey, text_hash  # noqa: E402

out = Path(sys.argv[2]).resolve()
out.unlink(missing_ok=True)
store = open_store(f"sqlite:///{out}", lease=timedelta(seconds=60))
me = Instance("release00006", "release-host", 4242, "pid:[4026531836]")
ledger = store.ledger_as(me, lease=timedelta(seconds=60))
due = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def item(
    post: str, part: int = 1, account: str = "francediplo", lang: str = "fr", channel: str = "x"
) -> NewDelivery:
    return NewDelivery(
        post,
        account,
        part,
        channel,
        lang,
        due + timedelta(minutes=part - 1),
        f"{post} {part} é",
        media=(MediaRef("media/a.jpg", "Le ministre"),) if post == "with-media" else (),
        revision="89abcdef0123456789abcdef0123456789abcdef",
        author="Desk <desk@example.org>",
    )


rows = {
    (r.post_id, r.account): r
    for r in ledger.ensure(
        [item(p) for p in ("pending", "sending", "posted", "failed", "retry", "unknown", "by-hand")]
        + [item("with-media", 1, "francediplo_EN", "en"), item("thread", 1), item("thread", 2)]
        + [
            item("posted", 1, "france_fr_mastodon", "fr", "mastodon"),
            item("posted", 1, "france_en_bluesky", "en", "bluesky"),
            item("unknown", 1, "france_es_telegram", "es", "telegram"),
            item("task", 1, "ambafrance_chine", "zh-Hans", "weibo"),
        ]
    )
}
ledger.hold([item("held")], "awaiting translation into fr: timeout", due - timedelta(hours=1))
now = datetime(2026, 11, 30, 7, 59, 30, 123456, tzinfo=UTC)
for key in [(p, "francediplo") for p in ("sending", "posted", "failed", "retry", "unknown")] + [
    ("posted", "france_fr_mastodon"),
    ("posted", "france_en_bluesky"),
    ("unknown", "france_es_telegram"),
    ("task", "ambafrance_chine"),
]:
    assert ledger.claim(rows[key].id, now) is not None
ledger.transition(
    rows[("posted", "francediplo")].id,
    State.POSTED,
    expect=[State.SENDING],
    remote_id="1860000000000000001",
    url="https://x.com/francediplo/status/1860000000000000001",
)
ledger.transition(
    rows[("posted", "france_fr_mastodon")].id,
    State.POSTED,
    expect=[State.SENDING],
    remote_id="113500000000000001",
    url="https://social.numerique.gouv.fr/@FranceDiplomatie/113500000000000001",
)
ledger.transition(
    rows[("posted", "france_en_bluesky")].id,
    State.POSTED,
    expect=[State.SENDING],
    remote_id="at://did:plc:abc/app.bsky.feed.post/3lbxyz",
    url="https://bsky.app/profile/francediplo-en.bsky.social/post/3lbxyz",
)
ledger.transition(
    rows[("failed", "francediplo")].id,
    State.FAILED,
    expect=[State.SENDING],
    error="X refused the text (403)",
)
ledger.transition(
    rows[("retry", "francediplo")].id,
    State.PENDING,
    expect=[State.SENDING],
    error="429",
    retry_at=datetime(2026, 11, 30, 8, 15, 0, 500000, tzinfo=UTC),
)
ledger.transition(
    rows[("unknown", "francediplo")].id, State.UNKNOWN, expect=[State.SENDING], error="timeout"
)
ledger.transition(
    rows[("unknown", "france_es_telegram")].id,
    State.UNKNOWN,
    expect=[State.SENDING],
    error="needs a person: Telegram cannot be searched; open t.me/francediplo_es",
)
ledger.transition(
    rows[("task", "ambafrance_chine")].id,
    State.UNKNOWN,
    expect=[State.SENDING],
    error="task for a person: publish it on Weibo by hand",
)
ledger.arm_by_hand([rows[("by-hand", "francediplo")].id])
for row in rows.values():
    ledger._beat.release(row.id)  # the heartbeat thread ends ("sending" stays SENDING)
store.pins.save({"slotted": Pin("morning", datetime(2026, 12, 1, 9, 30))})
store.translations.put(CacheKey("libre", "fr", "en", text_hash("Bonjour"), "g1"), "Hello")
store.pauses.set("francediplo_AR", "travaux", True)
store.pauses.set(None, "", True)
store.presence(timedelta(seconds=60), me).beat(now)
store.mark_sweep(now)
if store._shared._conn is not None:  # the ledger's shared connection
    store._shared._conn.close()
store.close()
with closing(sqlite3.connect(out)) as conn:  # one file, no -wal beside it
    conn.execute("PRAGMA journal_mode=DELETE")
    (version,) = conn.execute("SELECT version FROM schema_version").fetchone()
assert version == 6, version
print(out)
