"""Retract a post: delete every published part, cancel the ones not yet published.

A delivery whose outcome is not known (UNKNOWN, or FAILED because its account could never be
read) may be live on its platform: it is looked up first. Found: deleted, like a published
one. Not found: cancelled. The look-up fails (or the platform cannot be searched, as
Telegram): nothing is changed and the retraction is reported as incomplete, since marking it
RETRACTED would hide a post that may be live. Every platform is retracted the same way,
through its publisher's ``find`` and ``delete``; messages name the account's platform. A repost
(amplification) is undone (``Reposter.unrepost``), before the original is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.errors import PublishError
from bot.publish.deliver import display_name, is_task, may_be_live
from bot.publish.session import Publishing
from bot.state.ledger import Row, State


@dataclass
class Retraction:
    lines: list[str] = field(default_factory=list)
    ok: bool = True


def retract(pub: Publishing, rows: list[Row]) -> Retraction:
    out = Retraction()
    platforms = pub.platforms
    # Reposts first (a repost of a deleted post would linger on some platforms), then
    # replies, so a thread is never left hanging from a deleted first part.
    for row in sorted(rows, key=lambda r: (r.repost_of is None, -r.part)):
        where = f"{row.post_id} part {row.part} {row.account} [{row.channel}]"
        if row.state in (State.PENDING, State.HELD):
            if pub.ledger.transition(
                row.id, State.RETRACTED, expect=[row.state], error="cancelled by retract"
            ):
                out.lines.append(f"{where}: cancelled")
            continue
        deliverer = pub.deliverers.get(row.channel)
        if is_task(row):  # a manual channel's open task: withdrawn from the person
            name = display_name(platforms, row.account)
            if pub.ledger.transition(
                row.id, State.RETRACTED, expect=[row.state], error="cancelled by retract (task)"
            ):
                out.lines.append(
                    f"{where}: task cancelled (if it was already posted on {name}, delete it "
                    "there by hand)"
                )
            continue
        if may_be_live(row):
            name = display_name(platforms, row.account)
            if deliverer is None:
                out.lines.append(
                    f"{where}: NOT retracted: {name} may have it and {row.channel} is not "
                    "configured"
                )
                out.ok = False
                continue
            try:
                found = deliverer.lookup(row)
            except PublishError as exc:
                out.lines.append(
                    f"{where}: NOT retracted: {name} may have it, and the timeline could not be "
                    f"read ({exc}); left {row.state}, run retract again later"
                )
                out.ok = False
                continue
            if found is None:
                if pub.ledger.transition(
                    row.id,
                    State.RETRACTED,
                    expect=[row.state],
                    error="cancelled by retract (not on the timeline)",
                ):
                    out.lines.append(f"{where}: cancelled (not on the timeline)")
                continue
            # It is live: record it as such, then delete it like any published post.
            if not pub.ledger.transition(
                row.id, State.POSTED, expect=[row.state], remote_id=found.remote_id, url=found.url
            ):
                continue
            row = pub.ledger.get(row.id)
        if row.state is not State.POSTED or row.remote_id is None:
            continue
        if deliverer is None:
            out.lines.append(f"{where}: cannot delete ({row.channel} is not configured)")
            out.ok = False
            continue
        undone = "repost undone" if row.repost_of is not None else "deleted"
        try:
            deliverer.remove(row)
        except PublishError as exc:
            out.lines.append(f"{where}: NOT {undone}: {exc}")
            out.ok = False
            continue
        pub.ledger.transition(
            row.id, State.RETRACTED, expect=[State.POSTED], error=f"{undone} by retract"
        )
        out.lines.append(f"{where}: {undone} {row.remote_id}")
    return out
