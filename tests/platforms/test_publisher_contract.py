"""The publisher contract (``bot.publish.base.Publisher``), one set of tests run over every
publisher: the dry-run outbox, and X against the fake X in ``tests/servers/x.py``.

A new platform joins by adding one function to ``CHANNELS`` below: it starts the platform's
fake server (``tests/servers/<platform>.py``), builds the publisher against it, and says how
to make the fake refuse the next post. Every test here then runs against it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from publish.conftest import ACCOUNTS, APP
from servers.telegram import Chat, TelegramServer, token_for
from servers.x import XServer

from bot.errors import PublishError, PublishRejected
from bot.platforms.outbox import OutboxPublisher
from bot.platforms.telegram import TelegramPublisher
from bot.platforms.x import XCredentials, XPublisher
from bot.publish.base import Outgoing, Publisher, Receipt
from bot.settings import Secret

FR = "francediplo"


FAULTS = ("rate_limit", "server_error", "auth", "drop_after_store", "duplicate")
"""What a channel's ``fault`` hook can make its platform answer to the next post:

- ``rate_limit``: the platform's rate-limit answer with a reset time → PublishRateLimited
  whose ``retry_at`` is that reset;
- ``server_error``: a 5xx (nothing stored) → PublishAmbiguous (or PublishError);
- ``auth``: the credentials are refused → PublishAuthFailed;
- ``drop_after_store``: the platform stores the post, then the connection drops before the
  answer → PublishAmbiguous; the deliverer's reconcile then finds it (POSTED exactly once),
  except where the platform cannot be searched (Telegram: it stays UNKNOWN for a person);
- ``duplicate``: the platform refuses the text as a duplicate → PublishDuplicate.
"""


@dataclass(frozen=True)
class Stored:
    """One post as the platform's fake server holds it (not as the publisher reports it)."""

    remote_id: str
    text: str
    lang: str | None  # the language tag the platform stored (None: it has none)
    alts: tuple[str, ...]  # each image's alt text as stored ("" for none)
    reply_to: str | None  # the remote id it replies to


@dataclass
class Channel:
    """A publisher under test, the account it publishes as, and its platform's faults."""

    publisher: Publisher
    account: str
    handle: str
    refuse_next: Callable[[], None]  # the platform refuses the next post
    refused: type[PublishError]  # …and the publisher raises this
    # Make the platform answer the next post with one of FAULTS; False: this platform has no
    # such answer (the test is skipped for it, saying so).
    fault: Callable[[str], bool] = lambda _kind: False
    # What the platform's fake holds for ``account``, oldest first (None: not inspectable).
    stored: Callable[[], list[Stored]] | None = None
    # Every credential the publisher holds: none may appear in output, logs or state.
    secrets: tuple[str, ...] = ()
    # False where the platform cannot be searched for a post (Telegram): an ambiguous send
    # stays UNKNOWN for a person.
    searchable: bool = True
    # Whether the platform stores alt texts and language tags.
    has_alt: bool = True
    has_lang: bool = True


@contextmanager
def outbox_channel(tmp_path: Path) -> Iterator[Channel]:
    path = tmp_path / "outbox.jsonl"

    def refuse_next() -> None:  # the outbox refuses nothing but a file it cannot write
        path.unlink(missing_ok=True)
        path.mkdir()

    yield Channel(OutboxPublisher(path, {FR: FR}), FR, FR, refuse_next, PublishError)


@contextmanager
def x_channel(_tmp_path: Path) -> Iterator[Channel]:
    with XServer(accounts=ACCOUNTS, consumer=APP) as server:
        accounts = {a: XCredentials(Secret(t), Secret(s)) for a, (t, s, _h) in ACCOUNTS.items()}
        handles = {a: h for a, (_t, _s, h) in ACCOUNTS.items()}
        publisher = XPublisher(
            Secret(APP[0]), Secret(APP[1]), accounts, handles, api_url=server.url, timeout=2.0
        )

        def refuse_next() -> None:
            server.fail_next("400", method="POST", path="/2/tweets")

        yield Channel(publisher, FR, handles[FR], refuse_next, PublishRejected)
        assert not server.errors  # every request the publisher made was valid


@contextmanager
def telegram_channel(_tmp_path: Path) -> Iterator[Channel]:
    """A channel whose bot is its administrator. Telegram has no duplicate refusal, no alt
    text, no language tag, and cannot be searched."""
    token = token_for(7012345678, "CANARYtgC")
    chat = Chat(-1001234567890, "francediplo_tg", "France Diplomatie", admins={7012345678})
    with TelegramServer({token: (7012345678, "diplobot_fr_bot")}, [chat]) as server:
        publisher = TelegramPublisher(
            {FR: Secret(token)},
            {FR: "@francediplo_tg"},
            {FR: "francediplo_tg"},
            api_url=server.url.rstrip("/"),
            timeout=2.0,
        )
        faults = {
            "rate_limit": "429",
            "server_error": "500",
            "auth": "401",
            "drop_after_store": "drop_after_store",
        }

        def fault(kind: str) -> bool:
            if kind not in faults:
                return False
            server.fail_next(faults[kind], method=None)
            return True

        def stored() -> list[Stored]:
            return [
                Stored(
                    str(m.message_id),
                    m.body,
                    None,
                    tuple("" for _ in m.photos),
                    str(m.reply_to) if m.reply_to is not None else None,
                )
                for m in server.stored(chat.id)
            ]

        yield Channel(
            publisher,
            FR,
            "francediplo_tg",
            lambda: server.fail_next("400", method="sendMessage"),
            PublishRejected,
            fault=fault,
            stored=stored,
            secrets=(token,),
            searchable=False,
            has_alt=False,
            has_lang=False,
        )
        publisher.close()
        assert not server.errors  # every request the publisher made was valid


CHANNELS: dict[str, Callable[[Path], AbstractContextManager[Channel]]] = {
    "outbox": outbox_channel,
    "x": x_channel,
    "telegram": telegram_channel,
}


@pytest.fixture(params=sorted(CHANNELS))
def channel(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Channel]:
    with CHANNELS[request.param](tmp_path) as made:
        yield made


def _needs_search(channel: Channel) -> None:
    """Skip a test that reads the channel back, for a channel that cannot be searched."""
    if not channel.searchable:
        pytest.skip("this platform cannot be searched: find and recent have nothing to read")


def _since() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=1)


def _post(channel: Channel, text: str, reply_to: Receipt | None = None) -> Outgoing:
    return Outgoing(channel.account, channel.handle, text, reply_to=reply_to)


def test_publish_returns_a_receipt(channel: Channel) -> None:
    """A first part's receipt has the post's id and names no thread root."""
    receipt = channel.publisher.publish(_post(channel, "Ouverture de la #COP31 à Belém"))
    assert isinstance(receipt, Receipt)
    assert receipt.remote_id and receipt.root is None
    assert receipt.thread_root == receipt.remote_id


def test_a_reply_carries_the_previous_receipt_and_is_found(channel: Channel) -> None:
    """A part replies to the previous part's receipt; ``find`` knows it by that reply, and the
    thread's root travels from receipt to receipt."""
    _needs_search(channel)
    since = _since()
    first = channel.publisher.publish(_post(channel, "1/3 Accord à Belém"))
    second = channel.publisher.publish(_post(channel, "2/3 Les détails", reply_to=first))
    third = channel.publisher.publish(_post(channel, "3/3 Merci", reply_to=second))
    assert second.root == first.remote_id and third.root == first.remote_id

    found = channel.publisher.find(_post(channel, "2/3 Les détails", reply_to=first), since)
    assert found == second
    assert channel.publisher.find(_post(channel, "2/3 Les détails"), since) is None
    assert channel.publisher.find(_post(channel, "3/3 Merci", reply_to=first), since) is None
    replies = {p.remote_id: p.reply_to for p in channel.publisher.recent(channel.account, since)}
    assert replies == {
        first.remote_id: None,
        second.remote_id: first.remote_id,
        third.remote_id: second.remote_id,
    }


def test_find_tells_two_posts_differing_by_one_link_apart(channel: Channel) -> None:
    """Only the post with the same link is the one sent; the other is not on the account."""
    _needs_search(channel)
    since = _since()
    text = "Le communiqué : https://www.diplomatie.gouv.fr/{}"
    sent = channel.publisher.publish(_post(channel, text.format("cop31")))
    assert channel.publisher.find(_post(channel, text.format("cop31")), since) == sent
    assert channel.publisher.find(_post(channel, text.format("cop32")), since) is None


def test_recent_lists_what_was_published_newest_first(channel: Channel) -> None:
    _needs_search(channel)
    since = _since()
    sent = [channel.publisher.publish(_post(channel, f"Message {n}")) for n in range(3)]
    found = channel.publisher.recent(channel.account, since)
    assert [p.remote_id for p in found] == [r.remote_id for r in reversed(sent)]
    assert [p.text for p in found] == ["Message 2", "Message 1", "Message 0"]


def test_whoami_answers_the_accounts_handle(channel: Channel) -> None:
    assert channel.publisher.whoami(channel.account) == channel.handle


def test_delete_removes_the_post(channel: Channel) -> None:
    """Deleted, a post is neither found nor listed; deleting it again is no error."""
    _needs_search(channel)
    since = _since()
    kept = channel.publisher.publish(_post(channel, "Reste en ligne"))
    gone = channel.publisher.publish(_post(channel, "Retiré"))
    channel.publisher.delete(channel.account, gone.remote_id)
    assert channel.publisher.find(_post(channel, "Retiré"), since) is None
    listed = [p.remote_id for p in channel.publisher.recent(channel.account, since)]
    assert listed == [kept.remote_id]
    channel.publisher.delete(channel.account, gone.remote_id)


def test_a_refusal_maps_into_the_error_tree(channel: Channel) -> None:
    """What the platform refuses is a PublishError of the documented kind, the library's
    exception in ``__cause__``; nothing is published."""
    since = _since()
    channel.refuse_next()
    with pytest.raises(PublishError) as raised:
        channel.publisher.publish(_post(channel, "Refusé"))
    assert type(raised.value) is channel.refused
    assert raised.value.__cause__ is not None
    try:
        found = channel.publisher.find(_post(channel, "Refusé"), since)
    except PublishError:
        return  # the channel is still unusable (the outbox's file): nothing could be sent
    assert found is None
