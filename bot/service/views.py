"""What the service shows over HTTP: ``/healthz``, ``/readyz``, ``/status`` and ``/metrics``,
read from the service's state and the ledger at request time."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from bot.publish.deliver import for_a_person as is_for_a_person
from bot.state.ledger import Row, State

if TYPE_CHECKING:
    from bot.service.lifecycle import Service


def healthy(service: Service) -> bool:
    """The active service sweeps (and writes) every sweep interval; a standby polls the lease
    (a write too) every third of the lease; a service that just took over has not swept yet."""
    role = service.role
    with service.lock:
        last = service.last_sweep
    with role.lock:
        polled, since = role.last_poll, role.since
    now = datetime.now(UTC)
    if role.active:
        signs = [last, since]
        limit = timedelta(seconds=max(3 * service.settings.sweep_interval, 15))
    else:
        signs = [polled]
        limit = timedelta(seconds=max(3 * service.lease.renew_every, 15))
    newest = max((s for s in signs if s is not None), default=None)
    return newest is not None and now - newest < limit


def role(service: Service) -> dict[str, Any]:
    """This service's role and the lease as stored (``/status``)."""
    try:
        lease = service.lease.view()
    except Exception:  # the database is unreachable: /status still answers
        lease = None
    with service.role.lock:
        since, error = service.role.since, service.role.error
    return {
        "role": service.role.name,
        "instance": service.lease.me.owner,
        "since": _iso(since),
        "lease": lease.json() if lease else None,
        "lease_error": error,
    }


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


def mission_accounts(service: Service, mission: str | None) -> set[str] | None:
    """The accounts of ``mission`` in the running content (None: every account).

    Raises:
        KeyError: no such mission (or no valid content yet); the message lists them.
    """
    if mission is None:
        return None
    with service.lock:
        content = service.content
    if content is None:
        raise KeyError("no valid content loaded yet: missions are unknown")
    known = list(content.missions) or [content.central]
    if mission not in known:
        raise KeyError(f"no mission '{mission}'; missions: {', '.join(known)}")
    return set(content.accounts_of(mission))


def status(
    service: Service, limit: int = 50, offset: int = 0, mission: str | None = None
) -> dict[str, Any]:
    """What ``/status`` shows. Its cost does not grow with the ledger: counts come from
    one aggregate query, and each list is one page (``limit`` rows after ``offset``).
    ``mission``: only its accounts' deliveries (``?mission=``; KeyError if unknown)."""
    now = datetime.now(UTC)
    mine = mission_accounts(service, mission)
    counts: dict[str, dict[str, int]] = {}
    for (state, account), n in sorted(service.ledger.counts().items()):
        if mine is None or account in mine:
            counts.setdefault(str(state), {})[account] = n

    def page(states: list[State], recent_first: bool = False) -> list[dict[str, Any]]:
        rows = service.ledger.page(
            states, limit=limit, offset=offset, recent_first=recent_first, accounts=mine
        )
        return [_row_json(r) for r in rows]

    # SENDING rows whose owner is gone (ledger.py): the next sweep reconciles them.
    stale = [
        (r, why)
        for r, why in service.ledger.stale_sending(now)
        if mine is None or r.account in mine
    ]
    with service.lock:
        content = service.content
    paused = service.dispatch.paused(content) if content else {}
    if mine is not None:
        paused = {a: why for a, why in paused.items() if a in mine}
    upcoming = page([State.PENDING])
    # Being sent, or being checked against the account's timeline.
    in_flight = page([State.SENDING, State.UNKNOWN])
    # Waiting for a person: manual tasks (Weibo), UNKNOWN posts of a channel that cannot be
    # searched (Telegram); with the text and images a person posts or looks for.
    for_a_person = [
        {**_row_json(r), "text": r.text, "media": [m.file for m in r.media]}
        for r in service.ledger.page([State.UNKNOWN], limit=limit, offset=offset, accounts=mine)
        if is_for_a_person(r)
    ]
    # Ended without being published, most recent first.
    problems = page([State.FAILED, State.EXPIRED], recent_first=True)
    recent = page([s for s in State if s is not State.PENDING], recent_first=True)
    with service.lock:
        since = service.sync_failing_since
        return {
            **({"mission": mission} if mission is not None else {}),
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
            "for_a_person": for_a_person,
            "problems": problems,
            "recent": recent,
            "stale": [{**_row_json(r), "stale": why} for r, why in stale],
            # Posts of ours another publisher sent; other services on this state.
            **service.watcher.status(),
            # active or standby, and the lease (bot/state/lease.py)
            **role(service),
        }


class Figures:
    """The ``/metrics`` collector: every figure read at scrape time, from the ledger (counts,
    next due) and the service's state; names, types and labels are documented in
    docs/operations.md."""

    def __init__(self, service: Service, accounts: set[str] | None = None) -> None:
        self.service = service
        self.accounts = accounts  # one mission's (``?mission=``); None: every account

    def collect(self) -> Iterator[Metric]:
        service = self.service
        deliveries = GaugeMetricFamily(
            "diplobot_deliveries",
            "Deliveries in the ledger by state and account (and the account's mission).",
            labels=["state", "account", "mission"],
        )
        with service.lock:
            content = service.content
        for (state, account), count in sorted(service.ledger.counts().items()):
            if self.accounts is not None and account not in self.accounts:
                continue
            # The account's mission in the running content ("" before any valid content).
            mission = content.mission_of(account) if content is not None else ""
            deliveries.add_metric([str(state), account, mission], count)
        yield deliveries
        next_due = service.ledger.next_due()
        with service.lock:
            stats, last_sync, rev = service.stats, service.last_sync, service.revision
            engine_calls, cache_hits = stats.engine_calls, stats.cache_hits
            valid = not service.problems
            failing = service.sync_failing_since is not None
            good = service.last_good_sync
        yield CounterMetricFamily(
            "diplobot_translation_engine_calls", "Calls to the translation engine.", engine_calls
        )
        yield CounterMetricFamily(
            "diplobot_translation_cache_hits", "Translations found in the cache.", cache_hits
        )
        yield GaugeMetricFamily(
            "diplobot_last_sync_timestamp_seconds",
            "Last time the source was synced, whatever the outcome.",
            _stamp(last_sync),
        )
        yield GaugeMetricFamily(
            "diplobot_last_successful_sync_timestamp_seconds",
            "Last time the source was read.",
            _stamp(good),
        )
        yield GaugeMetricFamily(
            "diplobot_sync_failing", "1 while the content source cannot be read.", int(failing)
        )
        revision = GaugeMetricFamily(
            "diplobot_content_revision_info", "The content revision running.", labels=["revision"]
        )
        revision.add_metric([rev or ""], 1)
        yield revision
        yield GaugeMetricFamily(
            "diplobot_content_valid", "1 when the last revision seen is valid.", int(valid)
        )
        yield GaugeMetricFamily(
            "diplobot_next_due_timestamp_seconds",
            "When the next pending delivery is due (0: none).",
            _stamp(next_due),
        )
        yield from service.watcher.metrics(
            content.mission_of if content is not None else None, self.accounts
        )
        current = service.role.name
        roles = GaugeMetricFamily(
            "diplobot_role",
            "1 for this service's role: active (holds the lease, publishes) or standby.",
            labels=["role"],
        )
        for name in ("active", "standby"):
            roles.add_metric([name], int(name == current))
        yield roles
        yield GaugeMetricFamily(
            "diplobot_lease_epoch",
            "The lease's epoch this service holds (0: it holds none).",
            service.lease.epoch or 0,
        )


_REGISTRIES: weakref.WeakKeyDictionary[Service, CollectorRegistry] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


def registry(service: Service) -> CollectorRegistry:
    """A registry of ``service``'s own, made on its first scrape (never the process-wide one:
    two services in one process, as in the tests, each show their figures)."""
    with _REGISTRIES_LOCK:
        own = _REGISTRIES.get(service)
        if own is None:
            own = _REGISTRIES[service] = CollectorRegistry()
            own.register(Figures(service))
        return own


CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""What :func:`metrics` writes (``generate_latest``'s format)."""


def metrics(service: Service, mission: str | None = None) -> bytes:
    """``/metrics``: the Prometheus text format (labels escaped by the library). ``mission``:
    the per-account figures of its accounts only (``?mission=``; KeyError if unknown)."""
    mine = mission_accounts(service, mission)
    if mine is None:
        return generate_latest(registry(service))
    own = CollectorRegistry()
    own.register(Figures(service, mine))
    return generate_latest(own)


def _stamp(moment: datetime | None) -> float:
    return moment.timestamp() if moment else 0


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
        "for_a_person": is_for_a_person(r),
        "repost_of": r.repost_of,  # amplification: the original's delivery key
    }
