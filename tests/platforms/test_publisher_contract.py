"""The publisher contract (``bot.publish.base.Publisher``), one set of tests run over every
publisher: the dry-run outbox, and X against the fake X in ``tests/servers/x.py``.

A new platform joins by adding one function to ``CHANNELS`` below: it starts the platform's
fake server (``tests/servers/<platform>.py``), builds the publisher against it, and fills the
:class:`Channel` hooks: how to make the fake refuse the next post or answer it with one of
:data:`FAULTS`, what the fake stored, the credentials that must never leak. Every test here
then runs against it too; a test the channel cannot take (no such fault, not searchable, a
platform without reply chains) is skipped, saying why.

What is checked, for every channel:

- a post is stored as sent (its text, its language tag, its images' alt texts, the post it
  replies to), and ``find``, ``recent``, ``whoami`` and ``delete`` answer what the contract says;
- each of :data:`FAULTS` raises the documented exception, and the next post goes through;
- a post stored and then dropped goes through a real :class:`~bot.publish.deliver.Deliverer`
  on a real SQLite ledger: POSTED exactly once, the fake holding one post (UNKNOWN, raised
  to a person, where the platform cannot be searched), and never sent again;
- the secret canary: no credential in stdout, stderr, the logs (diplobot's own logging set
  up at DEBUG), an exception's message, ``repr(publisher)`` or the state files.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loguru import logger
from PIL import Image
from publish.conftest import ACCOUNTS, APP
from servers.bluesky import BlueskyServer
from servers.facebook import FacebookPage, FacebookServer
from servers.mastodon import MastodonServer
from servers.telegram import Chat, TelegramServer, token_for
from servers.x import XServer

from bot.errors import (
    PublishAmbiguous,
    PublishAuthFailed,
    PublishDuplicate,
    PublishError,
    PublishRateLimited,
    PublishRejected,
)
from bot.log import setup_logging
from bot.platforms import PLATFORMS
from bot.platforms.bluesky import BlueskyPublisher
from bot.platforms.facebook import FacebookPublisher
from bot.platforms.mastodon import MastodonAccount, MastodonPublisher
from bot.platforms.outbox import OutboxPublisher
from bot.platforms.telegram import TelegramPublisher
from bot.platforms.x import XCredentials, XPublisher
from bot.publish.base import MediaItem, Outgoing, Publisher, Receipt, Reposter
from bot.publish.deliver import WAITING, Deliverer
from bot.publish.retract import retract
from bot.publish.session import Publishing
from bot.settings import Secret
from bot.state import open_store
from bot.state.ledger import NewDelivery, Row, State

FR = "francediplo"
CENTRAL = "francediplo_EN"  # the account whose posts FR reposts (the repost tests)
LANG = "fr"  # the language every test post is tagged with (Outgoing.lang)


FAULTS = ("rate_limit", "server_error", "auth", "drop_after_store", "duplicate")
"""What a channel's ``fault`` hook can make its platform answer to the next post:

- ``rate_limit``: the platform's rate-limit answer with a reset time → PublishRateLimited
  whose ``retry_at`` is that reset; the hook announces the reset :data:`RATE_LIMIT_RESET`
  after the moment it is called, in the platform's own way (an epoch, a date, seconds or
  minutes to wait);
- ``server_error``: a 5xx (nothing stored) → PublishAmbiguous (or PublishError);
- ``auth``: the credentials are refused → PublishAuthFailed;
- ``drop_after_store``: the platform stores the post, then the connection drops before the
  answer → PublishAmbiguous; the deliverer's reconcile then finds it (POSTED exactly once),
  except where the platform cannot be searched (Telegram: it stays UNKNOWN for a person);
- ``duplicate``: the platform refuses the text as a duplicate → PublishDuplicate.

Each fault is for the next post only: the one after it goes through.
"""

RATE_LIMIT_RESET = timedelta(minutes=17)
"""The reset a ``rate_limit`` fault announces, from the moment the hook is called: a whole
number of minutes, so that every platform can say it (Facebook counts in minutes)."""
RESET_SLACK = timedelta(seconds=61)
"""How far ``retry_at`` may be from that reset: rounding to the second or the minute."""


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
    # Reposts (``bot.publish.base.Reposter``), where the platform can repost: the account
    # whose posts are reposted (the central one; the publisher holds its credentials too),
    # the ids of the posts ``account`` reposts now as the fake holds them, and how to make
    # the platform answer the next repost with one of FAULTS (False: no such answer).
    central: str | None = None
    reposts: Callable[[], list[str]] | None = None
    repost_fault: Callable[[str], bool] = lambda _kind: False


@contextmanager
def outbox_channel(tmp_path: Path) -> Iterator[Channel]:
    path = tmp_path / "outbox.jsonl"
    publisher = OutboxPublisher(path, {FR: FR})

    def refuse_next() -> None:  # the outbox refuses nothing but a file it cannot write
        path.unlink(missing_ok=True)
        path.mkdir()

    def stored() -> list[Stored]:
        return [
            Stored(
                str(r["id"]),
                str(r["text"]),
                r.get("lang") or None,
                tuple(m.get("alt") or "" for m in r.get("media") or []),
                r.get("reply_to"),
            )
            for r in publisher.records()
            if r["account"] == FR and not r.get("repost_of")
        ]

    def reposts() -> list[str]:
        return [
            str(r["repost_of"])
            for r in publisher.records()
            if r["account"] == FR and r.get("repost_of")
        ]

    # The outbox writes a file: it has no rate limit, server, credentials or duplicates.
    yield Channel(
        publisher,
        FR,
        FR,
        refuse_next,
        PublishError,
        stored=stored,
        central=CENTRAL,
        reposts=reposts,
    )


X_FAULTS = {
    "rate_limit": "429",
    "server_error": "503",
    "auth": "401",
    "drop_after_store": "drop_after_store",
    "duplicate": "403",  # X's duplicate-content refusal
}


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

        def fault(kind: str) -> bool:
            reset = int((datetime.now(UTC) + RATE_LIMIT_RESET).timestamp())
            server.fail_next(X_FAULTS[kind], method="POST", path="/2/tweets", reset=reset)
            return True

        def stored() -> list[Stored]:
            return [
                Stored(
                    t["id"],
                    t["text"],
                    None,  # X detects the language itself: the API takes none
                    tuple(m["alt_text"] or "" for m in t["media"]),
                    t["reply_to"],
                )
                for t in server.timeline(FR)
                if t["repost_of"] is None
            ]

        def repost_fault(kind: str) -> bool:
            if kind == "duplicate":
                return False  # X keeps one repost of a post: a second one is no refusal
            reset = int((datetime.now(UTC) + RATE_LIMIT_RESET).timestamp())
            path = f"/2/users/{server.account(FR).user_id}/retweets"
            server.fail_next(X_FAULTS[kind], method="POST", path=path, reset=reset)
            return True

        yield Channel(
            publisher,
            FR,
            handles[FR],
            refuse_next,
            PublishRejected,
            fault=fault,
            stored=stored,
            secrets=(*APP, *ACCOUNTS[FR][:2]),
            has_lang=False,
            central=CENTRAL,
            reposts=lambda: server.reposts(FR),
            repost_fault=repost_fault,
        )
        # Every request the publisher made was valid (a fault's 4xx is not a spec violation).
        assert not server.errors


MASTODON_TOKEN = "mastodon-tok-fr-CANARY-4d5e"
MASTODON_CENTRAL_TOKEN = "mastodon-tok-en-CANARY-8f9a"


@contextmanager
def mastodon_channel(_tmp_path: Path) -> Iterator[Channel]:
    accounts = {FR: (MASTODON_TOKEN, FR), CENTRAL: (MASTODON_CENTRAL_TOKEN, CENTRAL)}
    with MastodonServer(accounts=accounts) as server:
        publisher = MastodonPublisher(
            {
                a: MastodonAccount(server.url, Secret(token), handle)
                for a, (token, handle) in accounts.items()
            },
            timeout=2.0,
        )
        statuses = "/api/v1/statuses"

        def repost_fault(kind: str) -> bool:
            faults = {
                "rate_limit": "429",
                "server_error": "500",
                "auth": "401",
                "drop_after_store": "drop_after_store",
            }
            if kind not in faults:
                return False
            reset = int((datetime.now(UTC) + RATE_LIMIT_RESET).timestamp())
            server.fail_next(faults[kind], method="POST", path=f"{statuses}/*/reblog", reset=reset)
            return True

        def refuse_next() -> None:  # a text over the instance's limit, as Mastodon says it
            server.fail_next("422", method="POST", path=statuses)

        def fault(kind: str) -> bool:
            if kind == "duplicate":
                return False  # Mastodon refuses no duplicate: a repeated key is the same post
            faults = {
                "rate_limit": "429",
                "server_error": "503",
                "auth": "401",
                "drop_after_store": "drop_after_store",
            }
            reset = int((datetime.now(UTC) + RATE_LIMIT_RESET).timestamp())
            server.fail_next(faults[kind], method="POST", path=statuses, reset=reset)
            return True

        def stored() -> list[Stored]:
            return [
                Stored(
                    s["id"],
                    s["text"],
                    s["language"],
                    tuple(m["description"] or "" for m in s["media"]),
                    s["reply_to"],
                )
                for s in server.statuses(FR)
            ]

        yield Channel(
            publisher,
            FR,
            FR,
            refuse_next,
            PublishRejected,
            fault=fault,
            stored=stored,
            secrets=(MASTODON_TOKEN, MASTODON_CENTRAL_TOKEN),
            central=CENTRAL,
            reposts=lambda: server.reblogs(FR),
            repost_fault=repost_fault,
        )
        assert not server.errors  # every request the publisher made was one Mastodon has


BSKY_PASSWORD = "bsky-app-pass-CANARY-2b3c"  # an app password's shape: xxxx-xxxx-xxxx-xxxx
BSKY_HANDLE = "francediplo.bsky.social"
BSKY_CENTRAL = "francediplo-en.bsky.social"
BSKY_CENTRAL_PASSWORD = "bsky-app-pass-CANARY-9d8e"


@contextmanager
def bluesky_channel(tmp_path: Path) -> Iterator[Channel]:
    accounts = {FR: (BSKY_HANDLE, BSKY_PASSWORD), CENTRAL: (BSKY_CENTRAL, BSKY_CENTRAL_PASSWORD)}
    with BlueskyServer(accounts=accounts) as pds:
        publisher = BlueskyPublisher(
            {a: Secret(password) for a, (_h, password) in accounts.items()},
            {a: (handle, None) for a, (handle, _p) in accounts.items()},
            pds_url=pds.url,
            timeout=2.0,
            session_dir=tmp_path / "bluesky-sessions",
        )
        create = "com.atproto.repo.createRecord"

        def refuse_next() -> None:  # the PDS's InvalidRequest
            pds.fail_next("400", nsid=create)

        def fault(kind: str) -> bool:
            if kind == "rate_limit":
                reset = int((datetime.now(UTC) + RATE_LIMIT_RESET).timestamp())
                pds.fail_next("429", nsid=create, reset=reset)  # ratelimit-reset: an epoch
            elif kind == "server_error":
                pds.fail_next("500", nsid=create)
            elif kind == "auth":  # (the app password revoked for good: test_bluesky.py)
                pds.fail_next("401", nsid=create)
            elif kind == "drop_after_store":
                pds.fail_next("drop_after_store", nsid=create)
            else:  # "duplicate": Bluesky takes the same text twice; a key taken is ours
                return False
            return True

        def repost_fault(kind: str) -> bool:
            if kind == "rate_limit":
                reset = int((datetime.now(UTC) + RATE_LIMIT_RESET).timestamp())
                pds.fail_next("429", nsid=create, reset=reset)
            elif kind in ("server_error", "drop_after_store"):
                pds.fail_next({"server_error": "500"}.get(kind, kind), nsid=create)
            else:
                return False
            return True

        def stored() -> list[Stored]:
            return [
                Stored(
                    p["uri"],
                    p["text"],
                    (p["langs"] or [None])[0],
                    tuple(i["alt"] for i in p["images"]),
                    (p["reply"] or {}).get("parent"),
                )
                for p in pds.posts(FR)
            ]

        yield Channel(
            publisher,
            FR,
            BSKY_HANDLE,
            refuse_next,
            PublishRejected,
            fault=fault,
            stored=stored,
            secrets=(BSKY_PASSWORD, BSKY_CENTRAL_PASSWORD),
            central=CENTRAL,
            reposts=lambda: pds.reposts(FR),
            repost_fault=repost_fault,
        )
        assert not pds.errors  # every request the publisher made was one the PDS serves


FACEBOOK_TOKEN = "fb-page-token-CANARY-6d7e"
FACEBOOK_FAULTS = {
    "rate_limit": "32",  # page request limit, with estimated_time_to_regain_access
    "server_error": "500",
    "auth": "190",
    "drop_after_store": "drop_after_store",
    "duplicate": "506",
}


@contextmanager
def facebook_channel(_tmp_path: Path) -> Iterator[Channel]:
    page = FacebookPage(FACEBOOK_TOKEN, "1000000000001", "FranceDiplomatie", "France Diplomatie")
    with FacebookServer(pages={FR: page}) as server:
        publisher = FacebookPublisher(
            {FR: Secret(FACEBOOK_TOKEN)},
            {FR: page.username or page.id},
            {FR: page.id},
            api_url=server.url,
            timeout=2.0,
        )

        def refuse_next() -> None:
            server.fail_next("100", method="POST")

        def fault(kind: str) -> bool:
            # Facebook says how long to wait in minutes (estimated_time_to_regain_access).
            regain = int(RATE_LIMIT_RESET.total_seconds() // 60)
            server.fail_next(FACEBOOK_FAULTS[kind], method="POST", regain=regain)
            return True

        def stored() -> list[Stored]:
            return [Stored(p.id, p.text, None, p.alts, p.reply_to) for p in server.stored(FR)]

        yield Channel(
            publisher,
            FR,
            page.username or page.id,
            refuse_next,
            PublishRejected,
            fault=fault,
            stored=stored,
            secrets=(FACEBOOK_TOKEN,),
            has_lang=False,  # a Graph API post carries no language tag
        )
        assert not server.errors  # the fake never failed on what the publisher sent


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
                return False  # Telegram refuses no text as a duplicate
            # Flood control says how many seconds to wait: the reset, from now.
            server.retry_after = int(RATE_LIMIT_RESET.total_seconds())
            server.fail_next(faults[kind], method=None)
            return True

        def stored() -> list[Stored]:
            """One post per message, an album (a media group: one message per image) as one
            post under its first message's id, with its caption."""
            posts: list[Stored] = []
            groups: dict[str, int] = {}  # media group id → its index in posts
            for m in server.stored(chat.id):
                reply_to = str(m.reply_to) if m.reply_to is not None else None
                if m.media_group_id is not None and m.media_group_id in groups:
                    at = groups[m.media_group_id]
                    posts[at] = replace(posts[at], alts=(*posts[at].alts, ""))
                    continue
                if m.media_group_id is not None:
                    groups[m.media_group_id] = len(posts)
                alts = tuple("" for _ in m.photos)
                posts.append(Stored(str(m.message_id), m.body, None, alts, reply_to))
            return posts

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
    "mastodon": mastodon_channel,
    "outbox": outbox_channel,
    "x": x_channel,
    "bluesky": bluesky_channel,
    "facebook": facebook_channel,
    "telegram": telegram_channel,
}


@pytest.fixture(params=sorted(CHANNELS))
def channel(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Channel]:
    with CHANNELS[request.param](tmp_path) as made:
        yield made


def _since() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=1)


def _post(
    channel: Channel,
    text: str,
    reply_to: Receipt | None = None,
    media: tuple[MediaItem, ...] = (),
    key: str = "",
) -> Outgoing:
    return Outgoing(
        channel.account, channel.handle, text, reply_to=reply_to, media=media, key=key, lang=LANG
    )


def _stored(channel: Channel) -> list[Stored]:
    if channel.stored is None:
        pytest.skip("the channel's fake cannot be inspected")
    return channel.stored()


def _searchable(channel: Channel) -> None:
    if not channel.searchable:
        pytest.skip("the platform cannot be searched for a post: find and recent tell nothing")


def _replies(channel: Channel) -> None:
    """Skip a thread test on a platform that publishes a thread as one post (the registry's
    ``threads="join"``): its publisher is never given a reply."""
    platform = PLATFORMS.get(channel.publisher.name)
    if platform is not None and platform.limits.threads != "reply":
        pytest.skip(f"{platform.display} publishes a thread as one post (threads='join')")


def _fault(channel: Channel, kind: str) -> None:
    if not channel.fault(kind):
        pytest.skip(f"the platform has no '{kind}' answer")


def _image(path: Path, colour: tuple[int, int, int]) -> MediaItem:
    """A small real PNG (the fakes check what they are sent), its bytes read."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return MediaItem(path, None, buffer.getvalue())


# -- success ---------------------------------------------------------------------------------


def test_publish_returns_a_receipt(channel: Channel) -> None:
    """A first part's receipt has the post's id and names no thread root."""
    receipt = channel.publisher.publish(_post(channel, "Ouverture de la #COP31 à Belém"))
    assert isinstance(receipt, Receipt)
    assert receipt.remote_id and receipt.root is None
    assert receipt.thread_root == receipt.remote_id


def test_a_post_is_stored_as_sent(channel: Channel) -> None:
    """The platform holds one post, under the receipt's id: the text as sent, tagged with
    the post's language where the platform tags posts, replying to nothing."""
    text = "Ouverture de la #COP31 à Belém : la France y sera 🇫🇷"
    receipt = channel.publisher.publish(_post(channel, text, key="cop31#1@francediplo"))
    (post,) = _stored(channel)
    assert post.remote_id == receipt.remote_id
    assert post.text == text
    assert post.lang == (LANG if channel.has_lang else None)
    assert post.alts == () and post.reply_to is None


def test_images_are_stored_with_their_alt_texts(channel: Channel, tmp_path: Path) -> None:
    """Each image goes with its alt text as written (an image without one has none), in
    order; ``find`` knows the post by its text and its number of images."""
    since = _since()
    alt = "Le drapeau français au pavillon de la COP31, à Belém"
    blue = _image(tmp_path / "drapeau.png", (0, 35, 149))
    media = (
        MediaItem(blue.path, alt, blue.data),
        _image(tmp_path / "salle.png", (237, 41, 57)),
    )
    text = "La France à la COP31"
    receipt = channel.publisher.publish(_post(channel, text, media=media))
    (post,) = _stored(channel)
    assert post.remote_id == receipt.remote_id and post.text == text
    assert post.alts == ((alt, "") if channel.has_alt else ("", ""))
    if channel.searchable:
        assert channel.publisher.find(_post(channel, text, media=media), since) == receipt
        assert channel.publisher.find(_post(channel, text, media=media[:1]), since) is None
        assert channel.publisher.find(_post(channel, text), since) is None


def test_a_thread_is_stored_as_a_reply_chain(channel: Channel) -> None:
    """Each part is stored as a reply to the previous one, under its receipt's id."""
    _replies(channel)
    first = channel.publisher.publish(_post(channel, "1/3 Accord à Belém"))
    second = channel.publisher.publish(_post(channel, "2/3 Les détails", reply_to=first))
    third = channel.publisher.publish(_post(channel, "3/3 Merci", reply_to=second))
    stored = _stored(channel)
    assert [(p.remote_id, p.text, p.reply_to) for p in stored] == [
        (first.remote_id, "1/3 Accord à Belém", None),
        (second.remote_id, "2/3 Les détails", first.remote_id),
        (third.remote_id, "3/3 Merci", second.remote_id),
    ]
    assert second.root == first.remote_id and third.root == first.remote_id


def test_a_reply_carries_the_previous_receipt_and_is_found(channel: Channel) -> None:
    """A part replies to the previous part's receipt; ``find`` knows it by that reply, and the
    thread's root travels from receipt to receipt."""
    _replies(channel)
    _searchable(channel)
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
    _searchable(channel)
    since = _since()
    text = "Le communiqué : https://www.diplomatie.gouv.fr/{}"
    sent = channel.publisher.publish(_post(channel, text.format("cop31")))
    assert channel.publisher.find(_post(channel, text.format("cop31")), since) == sent
    assert channel.publisher.find(_post(channel, text.format("cop32")), since) is None


def test_recent_lists_what_was_published_newest_first(channel: Channel) -> None:
    _searchable(channel)
    since = _since()
    sent = [channel.publisher.publish(_post(channel, f"Message {n}")) for n in range(3)]
    found = channel.publisher.recent(channel.account, since)
    assert [p.remote_id for p in found] == [r.remote_id for r in reversed(sent)]
    assert [p.text for p in found] == ["Message 2", "Message 1", "Message 0"]


def test_whoami_answers_the_accounts_handle(channel: Channel) -> None:
    assert channel.publisher.whoami(channel.account) == channel.handle


def test_delete_removes_the_post(channel: Channel) -> None:
    """Deleted, a post is gone from the platform, neither found nor listed; deleting it
    again is no error."""
    since = _since()
    kept = channel.publisher.publish(_post(channel, "Reste en ligne"))
    gone = channel.publisher.publish(_post(channel, "Retiré"))
    channel.publisher.delete(channel.account, gone.remote_id)
    if channel.stored is not None:
        assert [p.remote_id for p in channel.stored()] == [kept.remote_id]
    if channel.searchable:
        assert channel.publisher.find(_post(channel, "Retiré"), since) is None
        listed = [p.remote_id for p in channel.publisher.recent(channel.account, since)]
        assert listed == [kept.remote_id]
    channel.publisher.delete(channel.account, gone.remote_id)


# -- refusals and faults ---------------------------------------------------------------------


def test_a_refusal_maps_into_the_error_tree(channel: Channel) -> None:
    """What the platform refuses is a PublishError of the documented kind, the library's
    exception in ``__cause__``; nothing is published."""
    since = _since()
    channel.refuse_next()
    with pytest.raises(PublishError) as raised:
        channel.publisher.publish(_post(channel, "Refusé"))
    assert type(raised.value) is channel.refused
    assert raised.value.__cause__ is not None
    # The outbox's refused file cannot be read either: there is nothing to look at.
    if channel.stored is not None:
        with suppress(PublishError):
            assert channel.stored() == []
    if not channel.searchable:
        return
    try:
        found = channel.publisher.find(_post(channel, "Refusé"), since)
    except PublishError:
        return  # the channel is still unusable (the outbox's file): nothing could be sent
    assert found is None


def test_a_rate_limit_says_when_to_try_again(channel: Channel) -> None:
    """The platform's reset becomes ``retry_at``; nothing is stored; once the fault is
    answered, the next post goes through."""
    before = datetime.now(UTC)
    _fault(channel, "rate_limit")
    with pytest.raises(PublishRateLimited) as raised:
        channel.publisher.publish(_post(channel, "Trop tôt"))
    reset = before + RATE_LIMIT_RESET
    assert reset - RESET_SLACK <= raised.value.retry_at <= reset + RESET_SLACK
    assert raised.value.retry_at.tzinfo is not None
    assert _stored(channel) == []
    receipt = channel.publisher.publish(_post(channel, "Trop tôt"))
    assert [p.remote_id for p in _stored(channel)] == [receipt.remote_id]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("server_error", PublishError),  # PublishAmbiguous, or a PublishError that is final
        ("auth", PublishAuthFailed),
        ("duplicate", PublishDuplicate),
    ],
)
def test_a_fault_that_stores_nothing_raises_the_documented_error(
    channel: Channel, kind: str, expected: type[PublishError]
) -> None:
    """The platform's answer is the documented exception, whose message says what happened;
    nothing is stored; the next post goes through."""
    _fault(channel, kind)
    with pytest.raises(PublishError) as raised:
        channel.publisher.publish(_post(channel, "Bonjour Belém"))
    assert isinstance(raised.value, expected), repr(raised.value)
    if kind == "server_error":  # not a refusal that would end the delivery FAILED
        assert not isinstance(
            raised.value, PublishAuthFailed | PublishRejected | PublishDuplicate
        ), repr(raised.value)
    assert str(raised.value).strip()
    assert _stored(channel) == []
    receipt = channel.publisher.publish(_post(channel, "Bonsoir Belém"))
    assert [p.remote_id for p in _stored(channel)] == [receipt.remote_id]


def test_a_post_stored_then_dropped_is_ambiguous(channel: Channel) -> None:
    """The platform stored the post and the answer was lost: the publisher cannot know, so
    it says the post may exist; the fake holds it once."""
    _fault(channel, "drop_after_store")
    with pytest.raises(PublishAmbiguous):
        channel.publisher.publish(_post(channel, "Perdu en route"))
    assert [p.text for p in _stored(channel)] == ["Perdu en route"]


# -- through the ledger ----------------------------------------------------------------------


@dataclass
class Delivering:
    """A real Deliverer on a real SQLite ledger in its own folder, around one channel."""

    deliverer: Deliverer
    alerts: list[tuple[Row, str]]
    state: Path  # the folder of the state database


def _delivering(channel: Channel, tmp_path: Path) -> Delivering:
    state = tmp_path / "state"
    state.mkdir()
    store = open_store(f"sqlite:///{state / 'state.sqlite'}")
    alerts: list[tuple[Row, str]] = []
    name = channel.publisher.name
    deliverer = Deliverer(
        store.ledger,
        channel.publisher,
        tmp_path,
        {channel.account: channel.handle},
        alert=lambda row, reason: alerts.append((row, reason)),
        platforms={channel.account: name} if name in PLATFORMS else {},
    )
    return Delivering(deliverer, alerts, state)


def _ensure(delivering: Delivering, channel: Channel, post_id: str, *texts: str) -> list[Row]:
    ledger = delivering.deliverer.ledger
    now = datetime.now(UTC)
    name = channel.publisher.name
    ledger.ensure(
        [
            NewDelivery(post_id, channel.account, n, name, LANG, now, text)
            for n, text in enumerate(texts, start=1)
        ]
    )
    return ledger.rows(post_id, channel=name)


def test_a_delivery_through_the_ledger_is_posted_as_recorded(
    channel: Channel, tmp_path: Path
) -> None:
    """The deliverer publishes the row's text in the row's language: POSTED under the id
    the platform stored, in one attempt; delivering it again sends nothing."""
    delivering = _delivering(channel, tmp_path)
    text = "Ouverture de la #COP31 à Belém"
    (done,) = delivering.deliverer.deliver_chain(_ensure(delivering, channel, "cop31", text))
    assert done.state is State.POSTED and done.attempts == 1, done.last_error
    (post,) = _stored(channel)
    assert (post.remote_id, post.text) == (done.remote_id, text)
    assert post.lang == (LANG if channel.has_lang else None)
    rows = delivering.deliverer.ledger.rows("cop31", channel=channel.publisher.name)
    assert delivering.deliverer.deliver_chain(rows, look_now=True) == rows
    assert len(_stored(channel)) == 1 and delivering.alerts == []


def test_a_post_stored_then_dropped_is_posted_exactly_once_through_the_ledger(
    channel: Channel, tmp_path: Path
) -> None:
    """The deliverer claims the row, the platform stores the post and the answer is lost:
    the row is reconciled POSTED under the stored post's id, in one attempt, and the
    platform holds it once. Where the platform cannot be searched, the row stays UNKNOWN,
    raised to a person once, and is never sent again by itself."""
    _fault(channel, "drop_after_store")
    delivering = _delivering(channel, tmp_path)
    deliverer = delivering.deliverer
    text = "Déclaration conjointe sur la COP31"
    (done,) = deliverer.deliver_chain(_ensure(delivering, channel, "cop31", text))
    stored = _stored(channel)
    assert [p.text for p in stored] == [text]
    if channel.searchable:
        assert done.state is State.POSTED, done.last_error
        assert done.remote_id == stored[0].remote_id and done.attempts == 1
        assert delivering.alerts == []
    else:
        assert done.state is State.UNKNOWN, done.last_error
        assert len(delivering.alerts) == 1
    # Another pass (the service's next sweep, or post-now) sends nothing more.
    rows = deliverer.ledger.rows("cop31", channel=channel.publisher.name)
    (again,) = deliverer.deliver_chain(rows, look_now=True)
    assert again.state is done.state and again.remote_id == done.remote_id
    assert [p.remote_id for p in _stored(channel)] == [stored[0].remote_id]
    assert len(delivering.alerts) == (0 if channel.searchable else 1)


def test_a_thread_whose_second_part_is_dropped_is_completed_once(
    channel: Channel, tmp_path: Path
) -> None:
    """Part 2 is stored and its answer lost: reconciled as the reply to part 1, then part 3
    replies to it; the platform holds the chain once."""
    _replies(channel)
    _searchable(channel)
    delivering = _delivering(channel, tmp_path)
    texts = ("1/3 Accord à Belém", "2/3 Les détails", "3/3 Merci")
    rows = _ensure(delivering, channel, "accord", *texts)
    (first,) = delivering.deliverer.deliver_chain(rows[:1])
    _fault(channel, "drop_after_store")
    done = delivering.deliverer.deliver_chain(
        delivering.deliverer.ledger.rows("accord", channel=channel.publisher.name)
    )
    assert [r.state for r in done] == [State.POSTED] * 3
    stored = _stored(channel)
    assert [(p.remote_id, p.text, p.reply_to) for p in stored] == [
        (done[0].remote_id, texts[0], None),
        (done[1].remote_id, texts[1], done[0].remote_id),
        (done[2].remote_id, texts[2], done[1].remote_id),
    ]
    assert first.remote_id == done[0].remote_id


def test_a_duplicate_through_the_ledger_fails_asking_for_another_text(
    channel: Channel, tmp_path: Path
) -> None:
    """The platform calls the text a duplicate but it is not on the account: never sent
    again as it is, FAILED with an alert that says to change the text."""
    _searchable(channel)
    _fault(channel, "duplicate")
    delivering = _delivering(channel, tmp_path)
    (done,) = delivering.deliverer.deliver_chain(
        _ensure(delivering, channel, "doublon", "Un texte refusé comme doublon")
    )
    assert done.state is State.FAILED
    assert "duplicate" in (done.last_error or "") and "change the text" in (done.last_error or "")
    assert [reason for _row, reason in delivering.alerts] == [done.last_error]
    assert _stored(channel) == []


# -- the secret canary -----------------------------------------------------------------------


@pytest.fixture
def diplobot_logging() -> Iterator[None]:
    """diplobot's own logging (bot/log.py), JSON at DEBUG on stderr, for the test; then
    loguru's default sink and the standard library's logging as they were."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    setup_logging("DEBUG", "json")
    yield
    logger.remove()
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)


def test_no_credential_appears_in_output_logs_errors_or_state(
    channel: Channel,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    diplobot_logging: None,
) -> None:
    """Publish, find, delete, every fault and a delivery through the ledger, with the logs
    at DEBUG: no credential in stdout, stderr (the logs), an exception's message or chain,
    ``repr`` of the publisher, or the state files."""
    assert all(len(s) >= 8 for s in channel.secrets), "a canary must be unmistakable"
    seen: list[str] = [repr(channel.publisher)]
    since = _since()
    sent = channel.publisher.publish(_post(channel, "Canari 1"))
    seen.append(repr(sent))
    if channel.searchable:
        seen.append(repr(channel.publisher.find(_post(channel, "Canari 1"), since)))
        seen.append(repr(channel.publisher.recent(channel.account, since)))
    channel.publisher.delete(channel.account, sent.remote_id)
    seen.append(channel.publisher.whoami(channel.account))
    for n, kind in enumerate(FAULTS, start=2):
        if not channel.fault(kind):
            continue
        try:
            channel.publisher.publish(_post(channel, f"Canari {n}"))
        except PublishError as exc:
            seen += _chain(exc)
    channel.refuse_next()
    try:
        channel.publisher.publish(_post(channel, "Canari refusé"))
    except PublishError as exc:
        seen += _chain(exc)
    delivering = _delivering(channel, tmp_path)
    if channel.fault("auth"):
        (failed,) = delivering.deliverer.deliver_chain(
            _ensure(delivering, channel, "canari", "Canari du ledger")
        )
        seen += [failed.last_error or "", *(reason for _row, reason in delivering.alerts)]
    captured = capfd.readouterr()
    files = [p for p in delivering.state.rglob("*") if p.is_file()]
    assert files, "the state database was written"
    state = b"".join(p.read_bytes() for p in files)
    for secret in channel.secrets:
        assert secret not in captured.out
        assert secret not in captured.err
        assert not [text for text in seen if secret in text]
        assert secret.encode() not in state


def _chain(exc: BaseException) -> list[str]:
    """The messages and reprs of an exception and every exception it was raised from."""
    found: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(found) < 20:
        found += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return found


# -- reposts (amplification) -----------------------------------------------------------------


@dataclass
class Reposting:
    """A channel whose platform can repost, its publisher as a :class:`Reposter`."""

    channel: Channel
    reposter: Reposter
    central: str


@pytest.fixture
def reposting(channel: Channel) -> Reposting:
    if channel.central is None or not isinstance(channel.publisher, Reposter):
        assert not isinstance(channel.publisher, Reposter), "a reposter without a repost test"
        pytest.skip(f"{channel.publisher.name} cannot repost: its accounts get a copy")
    return Reposting(channel, channel.publisher, channel.central)


def _original(r: Reposting, text: str = "Ouverture de la #COP31 à Belém") -> Receipt:
    """A post of the central account, as published."""
    return r.channel.publisher.publish(Outgoing(r.central, r.central, text, lang=LANG))


def _repost_item(r: Reposting, original: Receipt, key: str = "cop31#1@francediplo") -> Outgoing:
    return Outgoing(r.channel.account, r.channel.handle, "", key=key, lang=LANG, repost_of=original)


def _reposts(r: Reposting) -> list[str]:
    assert r.channel.reposts is not None
    return r.channel.reposts()


def test_a_repost_is_stored_and_found(reposting: Reposting) -> None:
    """The account reposts the central account's post: the platform holds one repost of
    it, and ``find_repost`` finds it under the receipt's id."""
    since = _since()
    original = _original(reposting)
    assert reposting.reposter.find_repost(_repost_item(reposting, original), since) is None
    receipt = reposting.reposter.repost(_repost_item(reposting, original))
    assert receipt.remote_id
    assert _reposts(reposting) == [original.remote_id]
    found = reposting.reposter.find_repost(_repost_item(reposting, original), since)
    assert found is not None and found.remote_id == receipt.remote_id
    # A repost is not one of the account's own posts: ``find`` and ``stored`` know none.
    assert _stored(reposting.channel) == []


def test_a_repost_sent_twice_is_one_repost(reposting: Reposting) -> None:
    """The same repost asked twice (a retry after a lost answer): one repost, the same
    receipt."""
    original = _original(reposting)
    first = reposting.reposter.repost(_repost_item(reposting, original))
    second = reposting.reposter.repost(_repost_item(reposting, original))
    assert second.remote_id == first.remote_id
    assert _reposts(reposting) == [original.remote_id]


def test_a_repost_is_undone(reposting: Reposting) -> None:
    """``unrepost`` takes it back; undoing it again is no error."""
    original = _original(reposting)
    receipt = reposting.reposter.repost(_repost_item(reposting, original))
    reposting.reposter.unrepost(reposting.channel.account, receipt.remote_id, original.remote_id)
    assert _reposts(reposting) == []
    reposting.reposter.unrepost(reposting.channel.account, receipt.remote_id, original.remote_id)
    assert _reposts(reposting) == []


def test_a_repost_of_a_deleted_post_is_refused(reposting: Reposting) -> None:
    """The original is gone: the platform refuses, finally (nothing to retry)."""
    if reposting.channel.publisher.name == "outbox":
        pytest.skip("the outbox writes what it is given: it knows no post to be gone")
    original = _original(reposting)
    reposting.channel.publisher.delete(reposting.central, original.remote_id)
    with pytest.raises(PublishRejected):
        reposting.reposter.repost(_repost_item(reposting, original))
    assert _reposts(reposting) == []


def test_a_rate_limited_repost_says_when_to_retry(reposting: Reposting) -> None:
    original = _original(reposting)
    if not reposting.channel.repost_fault("rate_limit"):
        pytest.skip("the platform has no rate-limit answer for a repost")
    before = datetime.now(UTC)
    with pytest.raises(PublishRateLimited) as caught:
        reposting.reposter.repost(_repost_item(reposting, original))
    assert abs(caught.value.retry_at - (before + RATE_LIMIT_RESET)) <= RESET_SLACK
    assert _reposts(reposting) == []
    reposting.reposter.repost(_repost_item(reposting, original))
    assert _reposts(reposting) == [original.remote_id]


def _repost_rows(delivering: Delivering, r: Reposting, post_id: str = "cop31") -> tuple[Row, Row]:
    """The central post's row and its repost's, recorded (PENDING, due now)."""
    ledger = delivering.deliverer.ledger
    now = datetime.now(UTC)
    name = r.channel.publisher.name
    delivering.deliverer.handles[r.central] = r.central
    ledger.ensure(
        [
            NewDelivery(post_id, r.central, 1, name, LANG, now, "Ouverture de la #COP31"),
            NewDelivery(
                post_id,
                r.channel.account,
                1,
                name,
                LANG,
                now,
                "",
                repost_of=f"{post_id}#1@{r.central}",
            ),
        ]
    )
    rows = ledger.rows(post_id, channel=name)
    (original,) = [row for row in rows if row.account == r.central]
    (repost,) = [row for row in rows if row.account == r.channel.account]
    return original, repost


def _later(delivering: Delivering, by: timedelta) -> None:
    """The deliverer's clock, ``by`` ahead (a repost waits with ``retry_at``)."""
    delivering.deliverer.clock = lambda: datetime.now(UTC) + by


def test_a_repost_waits_for_its_original_then_goes(reposting: Reposting, tmp_path: Path) -> None:
    """Due while its original is not posted yet: the repost waits (PENDING, a ``retry_at``,
    nothing sent, no attempt spent); once the original is POSTED, it is reposted."""
    delivering = _delivering(reposting.channel, tmp_path)
    deliverer = delivering.deliverer
    original, repost = _repost_rows(delivering, reposting)
    (waiting,) = deliverer.deliver_chain([repost])
    assert waiting.state is State.PENDING and waiting.attempts == 0
    assert waiting.retry_at is not None and waiting.retry_at > datetime.now(UTC)
    assert (waiting.last_error or "").startswith(WAITING)
    assert _reposts(reposting) == []
    # Asked again before its time (the next sweep): nothing is read or sent.
    assert deliverer.deliver_chain([waiting]) == [waiting]
    (posted,) = deliverer.deliver_chain([original])
    assert posted.state is State.POSTED, posted.last_error
    _later(delivering, timedelta(minutes=6))
    (done,) = deliverer.deliver_chain([deliverer.ledger.get(repost.id)])
    assert done.state is State.POSTED and done.attempts == 1, done.last_error
    assert _reposts(reposting) == [posted.remote_id]
    assert delivering.alerts == []


@pytest.mark.parametrize("ending", [State.FAILED, State.EXPIRED, State.RETRACTED])
def test_a_repost_whose_original_ended_is_skipped(
    reposting: Reposting, tmp_path: Path, ending: State
) -> None:
    """The original ended without being posted: its repost ends SKIPPED, saying why."""
    delivering = _delivering(reposting.channel, tmp_path)
    ledger = delivering.deliverer.ledger
    original, repost = _repost_rows(delivering, reposting)
    assert ledger.transition(original.id, ending, expect=[State.PENDING], error="refused (400)")
    (done,) = delivering.deliverer.deliver_chain([repost])
    assert done.state is State.SKIPPED
    why = f"the original cop31#1@{reposting.central} ended {ending}: refused (400)"
    assert done.last_error == why
    assert _reposts(reposting) == []


def test_a_repost_stored_then_dropped_is_posted_exactly_once(
    reposting: Reposting, tmp_path: Path
) -> None:
    """The platform makes the repost and the answer is lost: UNKNOWN, then found by
    ``find_repost``: POSTED in one attempt, one repost; another pass sends nothing."""
    delivering = _delivering(reposting.channel, tmp_path)
    deliverer = delivering.deliverer
    original, repost = _repost_rows(delivering, reposting)
    (posted,) = deliverer.deliver_chain([original])
    if not reposting.channel.repost_fault("drop_after_store"):
        pytest.skip("the platform's fake cannot drop a repost's answer")
    (done,) = deliverer.deliver_chain([repost])
    assert done.state is State.POSTED and done.attempts == 1, done.last_error
    assert _reposts(reposting) == [posted.remote_id]
    rows = [r for r in deliverer.ledger.rows("cop31") if r.account == reposting.channel.account]
    (again,) = deliverer.deliver_chain(rows, look_now=True)
    assert (again.state, again.remote_id) == (State.POSTED, done.remote_id)
    assert _reposts(reposting) == [posted.remote_id]
    assert delivering.alerts == []


def test_a_posted_repost_is_undone_by_retract(reposting: Reposting, tmp_path: Path) -> None:
    """``retract`` of the post undoes the repost first, then deletes the original."""
    delivering = _delivering(reposting.channel, tmp_path)
    deliverer = delivering.deliverer
    original, repost = _repost_rows(delivering, reposting)
    deliverer.deliver_chain([original])
    (done,) = deliverer.deliver_chain([deliverer.ledger.get(repost.id)])
    assert done.state is State.POSTED
    name = reposting.channel.publisher.name
    pub = Publishing(
        deliverer.ledger,
        None,  # type: ignore[arg-type]  # retract translates nothing
        None,  # type: ignore[arg-type]
        {name: deliverer},
        {reposting.central: name, reposting.channel.account: name},
        None,  # type: ignore[arg-type]  # nor notifies
    )
    result = retract(pub, deliverer.ledger.rows("cop31"))
    assert result.ok, result.lines
    assert result.lines[0].endswith(f"repost undone {done.remote_id}")
    assert _reposts(reposting) == []
    assert {r.state for r in deliverer.ledger.rows("cop31")} == {State.RETRACTED}
