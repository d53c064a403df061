"""What the service shows over HTTP: ``/healthz``, ``/readyz``, ``/status`` and ``/metrics``,
read from the service's state and the ledger at request time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select

from bot.schedule.ledger import Row, State
from bot.store import deliveries

if TYPE_CHECKING:
    from bot.service.lifecycle import Service


def healthy(service: Service) -> bool:
    with service.lock:
        last = service.last_sweep
    limit = timedelta(seconds=max(3 * service.settings.sweep_interval, 15))
    return last is not None and datetime.now(UTC) - last < limit


def not_ready(service: Service) -> str | None:
    """Why the content is not in sync (no valid content yet, or the source cannot be read
    now), for ``/readyz``; None when it is."""
    with service.lock:
        if service.sync_failing_since is not None:
            return (
                f"cannot read the content source since "
                f"{service.sync_failing_since.isoformat(timespec='seconds')}: {service.sync_error}"
            )
        if service.content is None:
            return "no valid content loaded yet"
        return None


def status(service: Service, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """What ``/status`` shows. Its cost does not grow with the ledger: counts come from
    one aggregate query, and each list is one page (``limit`` rows after ``offset``)."""
    now = datetime.now(UTC)
    counts: dict[str, dict[str, int]] = {}
    for (state, account), n in sorted(service.ledger.counts().items()):
        counts.setdefault(str(state), {})[account] = n

    def page(states: list[State], recent_first: bool = False) -> list[dict[str, Any]]:
        rows = service.ledger.page(states, limit=limit, offset=offset, recent_first=recent_first)
        return [_row_json(r) for r in rows]

    # SENDING rows whose owner is gone (ledger.py): the next sweep reconciles them.
    stale = service.ledger.stale_sending(now)
    with service.lock:
        content = service.content
    paused = service.dispatch.paused(content) if content else {}
    upcoming = page([State.PENDING])
    # Being sent, or being checked against the account's timeline.
    in_flight = page([State.SENDING, State.UNKNOWN])
    # Ended without being published, most recent first.
    problems = page([State.FAILED, State.EXPIRED], recent_first=True)
    recent = page([s for s in State if s is not State.PENDING], recent_first=True)
    with service.lock:
        since = service.sync_failing_since
        return {
            "now": now.isoformat(timespec="seconds"),
            "revision": service.revision,
            "seen_revision": service.seen_revision,
            "content_valid": not service.problems,
            "content_errors": [str(p) for p in service.problems],
            "sync_error": service.sync_error,
            "last_sync": _iso(service.last_sync),
            "sync": {
                "ok": since is None and service.last_good_sync is not None,
                "failing_since": _iso(since),
                "last_success": _iso(service.last_good_sync),
                "error": service.sync_error,
            },
            "warnings": service.warnings,
            "paused": paused,
            "counts": counts,
            "page": {"limit": limit, "offset": offset},
            "upcoming": upcoming,
            "open": in_flight,
            "problems": problems,
            "recent": recent,
            "stale": [{**_row_json(r), "stale": why} for r, why in stale],
            # Posts of ours another publisher sent; other services on this state.
            **service.watcher.status(),
        }


def metrics(service: Service) -> str:
    lines = [
        "# HELP diplobot_deliveries Deliveries in the ledger by state and account.",
        "# TYPE diplobot_deliveries gauge",
    ]
    next_due = _next_due(service.engine)
    for (state, account), count in sorted(service.ledger.counts().items()):
        lines.append(
            f'diplobot_deliveries{{state="{_label(state)}",account="{_label(account)}"}} {count}'
        )
    with service.lock:
        stats, last_sync, rev = service.stats, service.last_sync, service.revision
        valid = not service.problems
        failing = service.sync_failing_since is not None
        good = service.last_good_sync
    lines += [
        "# TYPE diplobot_translation_engine_calls_total counter",
        f"diplobot_translation_engine_calls_total {stats.engine_calls}",
        "# TYPE diplobot_translation_cache_hits_total counter",
        f"diplobot_translation_cache_hits_total {stats.cache_hits}",
        "# TYPE diplobot_last_sync_timestamp_seconds gauge",
        f"diplobot_last_sync_timestamp_seconds {last_sync.timestamp() if last_sync else 0}",
        "# HELP diplobot_last_successful_sync_timestamp_seconds Last time the source was read.",
        "# TYPE diplobot_last_successful_sync_timestamp_seconds gauge",
        f"diplobot_last_successful_sync_timestamp_seconds {good.timestamp() if good else 0}",
        "# HELP diplobot_sync_failing 1 while the content source cannot be read.",
        "# TYPE diplobot_sync_failing gauge",
        f"diplobot_sync_failing {1 if failing else 0}",
        "# TYPE diplobot_content_revision_info gauge",
        f'diplobot_content_revision_info{{revision="{_label(rev or "")}"}} 1',
        "# TYPE diplobot_content_valid gauge",
        f"diplobot_content_valid {1 if valid else 0}",
        "# TYPE diplobot_next_due_timestamp_seconds gauge",
        f"diplobot_next_due_timestamp_seconds {next_due.timestamp() if next_due else 0}",
        *service.watcher.metrics(_label),
    ]
    return "\n".join(lines) + "\n"


def _next_due(engine: Engine) -> datetime | None:
    """When the next PENDING delivery is due (the only SQL here)."""
    with engine.connect() as conn:
        due = conn.execute(
            select(func.min(deliveries.c.due_at)).where(deliveries.c.state == State.PENDING.value)
        ).scalar()
    return datetime.fromisoformat(due) if due else None


def _label(value: str) -> str:
    """A Prometheus label value: backslash, double quote and line feed escaped, as the text
    exposition format requires (an account id may hold any of them)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def _row_json(r: Row) -> dict[str, Any]:
    return {
        "post": r.post_id,
        "account": r.account,
        "part": r.part,
        "channel": r.channel,
        "state": str(r.state),
        "due": r.due_at.isoformat(timespec="seconds"),
        "attempts": r.attempts,
        "url": r.url,
        "error": r.last_error,
    }
