"""``diplobot run`` on PostgreSQL (``--state postgresql+psycopg://…``): the first start sets
up an empty database and publishes from it, and a restart goes on from the same ledger."""

from __future__ import annotations

import time

from servers.x import XServer
from service.conftest import (
    HANDLES,
    ContentRepo,
    ServiceFactory,
    due_in,
    post_yaml,
    wait_for,
)
from service.test_run import all_in, everywhere, published, tweet_posts
from sqlalchemy import inspect, select

from bot.state.dialect import engine_for
from bot.state.migrations import STEPS
from bot.state.tables import schema_version


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
    svc.start()
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
