"""Retract a post: delete every published part, cancel the ones not yet published."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.errors import PublishError
from bot.publish.session import Publishing
from bot.schedule.ledger import Row, State


@dataclass
class Retraction:
    lines: list[str] = field(default_factory=list)
    ok: bool = True


def retract(pub: Publishing, rows: list[Row]) -> Retraction:
    out = Retraction()
    # Replies first, so a thread is never left hanging from a deleted first part.
    for row in sorted(rows, key=lambda r: -r.part):
        where = f"{row.post_id} part {row.part} {row.account} [{row.channel}]"
        if row.state in (State.PENDING, State.HELD, State.UNKNOWN):
            if pub.ledger.transition(
                row.id, State.RETRACTED, expect=[row.state], error="cancelled by retract"
            ):
                out.lines.append(f"{where}: cancelled")
            continue
        if row.state is not State.POSTED or row.remote_id is None:
            continue
        deliverer = pub.deliverers.get(row.channel)
        if deliverer is None:
            out.lines.append(f"{where}: cannot delete ({row.channel} is not configured)")
            out.ok = False
            continue
        try:
            deliverer.publisher.delete(row.account, row.remote_id)
        except PublishError as exc:
            out.lines.append(f"{where}: NOT deleted: {exc}")
            out.ok = False
            continue
        pub.ledger.transition(
            row.id, State.RETRACTED, expect=[State.POSTED], error="deleted by retract"
        )
        out.lines.append(f"{where}: deleted {row.remote_id}")
    return out
