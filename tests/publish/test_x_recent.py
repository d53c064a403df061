"""``XPublisher.recent``: an account's posts since a moment, as they were sent, whoever sent
them (the service's watch for another publisher reads them, issue 15 item 10)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from publish.conftest import ACCOUNTS, APP
from servers.x import XServer

from bot.platforms.x import XCredentials, XPublisher
from bot.publish.base import MediaItem, Outgoing
from bot.settings import Secret

ROOT = Path(__file__).resolve().parents[2]
FR = "francediplo"


@pytest.fixture
def publisher(x: XServer) -> Iterator[XPublisher]:
    accounts = {a: XCredentials(Secret(t), Secret(s)) for a, (t, s, _h) in ACCOUNTS.items()}
    handles = {a: h for a, (_t, _s, h) in ACCOUNTS.items()}
    yield XPublisher(Secret(APP[0]), Secret(APP[1]), accounts, handles, api_url=x.url, timeout=2.0)


def test_recent_gives_every_post_since_as_sent_newest_first(
    x: XServer, publisher: XPublisher
) -> None:
    """Posts since ``since``, ours and one made by hand, newest first: text with its links
    expanded and ``&`` unescaped, the image post without X's media link, media counted,
    replies named, created_at and URL given; older posts and other accounts left out."""
    now = datetime.now(UTC)
    x.add_tweet(FR, "Ancien message", created_at=now - timedelta(hours=2))
    x.add_tweet("francediplo_EN", "Another account")
    since = now - timedelta(minutes=1)
    text = "Climat & océans https://www.diplomatie.gouv.fr/climat"
    first = publisher.publish(Outgoing(FR, FR, text))
    image = (ROOT / "content/media/drapeau.png").read_bytes()
    media = (MediaItem(ROOT / "content/media/drapeau.png", "Drapeau", image),)
    second = publisher.publish(Outgoing(FR, FR, "Suite <2/2>", reply_to=first, media=media))
    hand = x.add_tweet(FR, "Posté à la main")

    found = publisher.recent(FR, since)

    assert [p.remote_id for p in found] == [hand["id"], second.remote_id, first.remote_id]
    assert [p.text for p in found] == ["Posté à la main", "Suite <2/2>", text]
    assert [p.media for p in found] == [0, 1, 0]
    assert [p.reply_to for p in found] == [None, first.remote_id, None]
    assert all(
        p.created_at is not None and p.created_at >= since.replace(microsecond=0) for p in found
    )
    assert found[1].url == f"https://x.com/francediplo/status/{second.remote_id}"
    assert not x.errors
