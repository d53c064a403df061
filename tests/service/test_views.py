"""/metrics through prometheus-client (bot/service/views.py): each service has its own registry,
whose collector reads the ledger and the service's state at scrape time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bot.service import Service, views
from bot.settings import ServiceSettings
from bot.source import LocalSource
from bot.state import open_store
from bot.state.ledger import NewDelivery


def _service(folder: Path) -> Service:
    (folder / "schedules").mkdir(parents=True)
    store = open_store(f"sqlite:///{folder / 'state.sqlite'}")
    return Service(LocalSource(folder), store, folder, ServiceSettings())


def _samples(service: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = views.metrics(service).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_each_service_shows_its_own_ledger_read_at_scrape_time(tmp_path: Path) -> None:
    """Two services in one process: each /metrics counts its own ledger, as it is when
    scraped; nothing goes to the process-wide registry."""
    one, two = _service(tmp_path / "one"), _service(tmp_path / "two")
    due = datetime.now(UTC) + timedelta(hours=1)
    row = NewDelivery(post_id="p", account="a", part=1, channel="x", lang="fr", due_at=due, text="")
    one.ledger.ensure([row])
    first, other = _samples(one), _samples(two)
    # No valid content yet: the account's mission is unknown ("").
    labels = (("account", "a"), ("mission", ""), ("state", "PENDING"))
    assert first[("diplobot_deliveries", labels)] == 1
    assert not any(name == "diplobot_deliveries" for name, _ in other)
    assert first[("diplobot_next_due_timestamp_seconds", ())] == due.timestamp()
    assert other[("diplobot_next_due_timestamp_seconds", ())] == 0
    for name in (
        "diplobot_translation_engine_calls_total",
        "diplobot_translation_cache_hits_total",
        "diplobot_sync_failing",
        "diplobot_content_valid",
        "diplobot_other_services",
    ):
        assert (name, ()) in first, name
    one.stats.engine_calls = 7  # as an apply counts them
    assert _samples(one)[("diplobot_translation_engine_calls_total", ())] == 7
    assert not [m for m in REGISTRY.collect() if m.name.startswith("diplobot_")]
