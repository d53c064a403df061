"""``diplobot run`` on PostgreSQL (``--state postgresql+psycopg://…``): the first start sets
up an empty database and publishes from it, a restart goes on from the same ledger, and a
service SIGKILLed in the middle of a burst, restarted, publishes every delivery once (the
claims it left SENDING found stale and reconciled on the fake X's timelines)."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from publish.test_crash import LaggyX, laggy_x
from servers.x import XServer
from service.conftest import (
    HANDLES,
    ContentRepo,
    ServiceFactory,
    due_in,
    post_yaml,
    sleep_until,
    wait_for,
)
from service.test_run import all_in, everywhere, published, tweet_posts
from sqlalchemy import inspect, select, update

from bot.state.dialect import engine_for
from bot.state.migrations import STEPS
from bot.state.tables import deliveries, schema_version


def test_first_run_sets_up_an_empty_database_and_publishes_once(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer, pg_url: str
) -> None:
    """An empty database: the first `diplobot run` migrates it to the latest schema, a post
    committed then reaches every account once; after a restart the ledger is the same and
    nothing is sent again."""
    engine = engine_for(pg_url)
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == []
    svc = service(state_url=pg_url)
    svc.env["DIPLOBOT_STATE_DIR"] = str(svc.state_dir)  # as docker-compose.yml sets /data
    svc.start()
    assert (svc.clone / "schedules" / "accounts.yaml").is_file()  # the clone is in it
    with engine.connect() as conn:
        assert conn.execute(select(schema_version.c.version)).scalar() == len(STEPS)
    engine.dispose()
    text = "Annonce sur PostgreSQL"
    content_repo.write("content/posts/annonce.yaml", post_yaml("annonce", due_in(4), text))
    rev = content_repo.commit("annonce")
    wait_for("the commit to be applied", lambda: svc.status()["revision"] == rev)
    wait_for("the post on every account", lambda: everywhere(x, text), timeout=15)
    wait_for("every delivery POSTED", lambda: all_in(svc, "annonce", "POSTED"), timeout=10)
    assert svc.stop() == 0
    svc.start()
    time.sleep(1.5)  # sweeps of the restarted service: nothing is sent again
    assert all_in(svc, "annonce", "POSTED")
    assert {a: len(p) for a, p in published(x, text).items()} == dict.fromkeys(HANDLES, 1)
    assert tweet_posts(x) == len(HANDLES)
    rows = svc.ledger("annonce")
    assert sorted(r["account"] for r in rows) == sorted(HANDLES)


@pytest.fixture
def x() -> Iterator[LaggyX]:
    """The fake X, slowed down (so a kill lands mid-request) and without its refusal of a
    duplicate text (so only the ledger stands between a crash and a second post)."""
    with laggy_x() as server:
        yield server


def test_killed_in_a_burst_and_restarted_it_publishes_every_delivery_once(
    content_repo: ContentRepo, service: ServiceFactory, x: LaggyX, pg_url: str
) -> None:
    """Eight posts due at once on the four accounts (32 deliveries); the service is
    SIGKILLed while it publishes them and started again: every delivery ends POSTED, and
    each post is on each timeline exactly once."""
    svc = service(state_url=pg_url)
    svc.start()
    due = due_in(5)
    texts = [f"Rafale {i} sur PostgreSQL" for i in range(8)]
    for i, text in enumerate(texts):
        content_repo.write(f"content/posts/rafale-{i}.yaml", post_yaml(f"rafale-{i}", due, text))
    rev = content_repo.commit("rafale")
    wait_for("the commit to be applied", lambda: svc.status()["revision"] == rev)
    sleep_until(due)
    wait_for("the burst to start", lambda: tweet_posts(x) >= 3, timeout=10)
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGKILL)
    svc.proc.wait(10)
    sent_before = tweet_posts(x)
    assert sent_before < len(texts) * len(HANDLES), "killed too late: nothing left to recover"
    svc.start()
    settled = wait_for("the claims left by the kill settled", lambda: settle(pg_url), timeout=60)
    if settled == "backing off":  # sent again only after a back-off (minutes): wait it out
        assert svc.stop() == 0
        wait_out_backoff(pg_url)
        svc.start()
    wait_for(
        "every delivery POSTED",
        lambda: all(all_in(svc, f"rafale-{i}", "POSTED") for i in range(len(texts))),
        timeout=60,
    )
    for text in texts:
        counts = {a: len(p) for a, p in published(x, text).items()}
        assert counts == dict.fromkeys(HANDLES, 1), (text, counts)
    # The kill left claims in flight: the restart found them stale and reconciled them.
    assert any(e["message"] == "publish.recovered" for e in svc.events())


def settle(url: str) -> str | None:
    """None while a delivery is SENDING or UNKNOWN; then "posted" when all are POSTED, or
    "backing off" when some wait for their ``retry_at`` (not found on X after the kill)."""
    engine = engine_for(url)
    with engine.connect() as conn:
        states = Counter(conn.execute(select(deliveries.c.state)).scalars())
    engine.dispose()
    if states["SENDING"] or states["UNKNOWN"]:
        return None
    return "posted" if set(states) == {"POSTED"} else "backing off"


def wait_out_backoff(url: str) -> None:
    """As an operator who waited: PENDING rows whose ``retry_at`` is ahead become due now
    (the service is stopped; the only write behind its back, as in test_service_crash)."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.state == "PENDING", deliveries.c.retry_at > past)
            .values(retry_at=past)
        )
    engine.dispose()
