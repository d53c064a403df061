"""The Mastodon publisher against the fake instance (``tests/servers/mastodon.py``), through
the real Mastodon.py: what it sends (language, alt text, idempotency key, replies), how each
answer of the instance maps into the error tree, and how statuses are read back from HTML."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from PIL import Image
from servers.mastodon import MastodonServer

from bot.errors import (
    ConfigError,
    PublishAmbiguous,
    PublishAuthFailed,
    PublishError,
    PublishRateLimited,
    PublishRejected,
)
from bot.platforms.mastodon import (
    MastodonAccount,
    MastodonPublisher,
    idempotency_key,
    iso639,
    plain_text,
    publisher,
    read_settings,
)
from bot.publish.base import MediaItem, Outgoing
from bot.publish.deliver import Deliverer
from bot.settings import Secret, Settings
from bot.state import open_store, state_url
from bot.state.ledger import Ledger, NewDelivery, State

FR = "francediplo_fr"
TOKEN = "mastodon-tok-CANARY-8f7e"
OTHER = "francediplo_es"
OTHER_TOKEN = "mastodon-tok-es-CANARY-1a2b"


@pytest.fixture
def server() -> Iterator[MastodonServer]:
    accounts = {FR: (TOKEN, "francediplo"), OTHER: (OTHER_TOKEN, "francediplo_es")}
    remote = {"UN@mastodon.un.org": "https://mastodon.un.org/@UN"}
    with MastodonServer(accounts=accounts, remote=remote) as srv:
        yield srv
        assert not srv.errors  # the publisher asked only for what Mastodon has


def _publisher(
    srv: MastodonServer, *, timeout: float = 2.0, handle: str = "francediplo"
) -> MastodonPublisher:
    return MastodonPublisher({FR: MastodonAccount(srv.url, Secret(TOKEN), handle)}, timeout=timeout)


@pytest.fixture
def pub(server: MastodonServer) -> MastodonPublisher:
    return _publisher(server)


def _png(color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(out, "PNG")
    return out.getvalue()


def _item(text: str, **kwargs: object) -> Outgoing:
    return Outgoing(FR, "francediplo", text, **kwargs)  # type: ignore[arg-type]


def _since() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=1)


def _posts(srv: MastodonServer) -> list[str]:
    return [c.path for c in srv.calls if c.method == "POST" and c.path == "/api/v1/statuses"]


# -- what is sent --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "stored"), [("fr", "fr"), ("zh-Hans", "zh"), ("pt-BR", "pt"), ("ar", "ar"), ("", None)]
)
def test_the_language_is_the_iso_639_part_of_the_tag(
    server: MastodonServer, pub: MastodonPublisher, tag: str, stored: str | None
) -> None:
    pub.publish(_item("Bonjour", lang=tag, key=f"p#0@{tag}"))
    assert [s["language"] for s in server.statuses(FR)] == [stored]


def test_iso639_refuses_what_is_no_language_code() -> None:
    assert iso639("zh_Hant") == "zh"
    assert iso639("x-klingon") is None
    assert iso639("1234") is None


def test_images_carry_their_alt_text_and_are_awaited_until_processed(
    server: MastodonServer,
) -> None:
    """The instance processes uploads asynchronously (202, url null) and refuses a status with
    an unprocessed attachment: the publisher polls until each is ready."""
    server.processing_polls = 2
    pub = _publisher(server)
    media = (
        MediaItem(Path("carte.png"), "Carte de la COP31", _png("red")),
        MediaItem(Path("photo.png"), None, _png("blue")),
    )
    receipt = pub.publish(_item("Deux images", media=media, key="img#0@fr", lang="fr"))
    (status,) = server.statuses(FR)
    assert status["id"] == receipt.remote_id
    assert [m["description"] for m in status["media"]] == ["Carte de la COP31", None]
    assert server.media(status["media"][0]["id"]).data == media[0].data
    polls = [c for c in server.calls if c.method == "GET" and c.path.startswith("/api/v1/media/")]
    assert len(polls) == 4  # two reads of each: 206, then 200


def test_an_image_never_processed_is_an_error_to_retry_not_a_post(
    server: MastodonServer,
) -> None:
    server.processing_polls = 10_000
    pub = _publisher(server, timeout=0.3)
    with pytest.raises(PublishError, match="had not processed it") as raised:
        pub.publish(_item("Image", media=(MediaItem(Path("a.png"), "alt", _png()),)))
    assert type(raised.value) is PublishError  # not ambiguous: nothing is public
    assert _posts(server) == []


def test_a_file_that_is_no_image_is_refused_by_the_instance(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    with pytest.raises(PublishRejected, match="File content type is invalid"):
        pub.publish(_item("Image", media=(MediaItem(Path("a.png"), "alt", b"not an image"),)))
    assert server.statuses(FR) == []


def test_a_thread_replies_part_to_part(server: MastodonServer, pub: MastodonPublisher) -> None:
    first = pub.publish(_item("1/2 Accord", key="t#0@fr"))
    second = pub.publish(_item("2/2 Détails", reply_to=first, key="t#1@fr"))
    assert second.root == first.remote_id
    assert [s["reply_to"] for s in server.statuses(FR)] == [None, first.remote_id]


def test_a_reply_to_a_deleted_status_is_refused(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    first = pub.publish(_item("1/2 Accord"))
    pub.delete(FR, first.remote_id)
    with pytest.raises(PublishRejected, match="404"):
        pub.publish(_item("2/2 Détails", reply_to=first))


# -- never twice ---------------------------------------------------------------------------------


def test_the_idempotency_key_is_derived_from_the_delivery_key() -> None:
    """Stable for a delivery, different between deliveries, ASCII whatever the post's id,
    and without the account's name (which is in the delivery key)."""
    one = idempotency_key(_item("x", key="cop31-été#0@francediplo_fr"))
    assert one == idempotency_key(_item("y", key="cop31-été#0@francediplo_fr"))
    assert one != idempotency_key(_item("x", key="cop31-été#1@francediplo_fr"))
    assert one.isascii() and "francediplo" not in one
    assert idempotency_key(_item("x")) == ""


def test_a_retry_after_a_lost_answer_is_the_same_status(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    """The instance stored the status, the answer was lost: the retry carries the same
    Idempotency-Key, and the instance answers the status it already has."""
    item = _item("Communiqué", key="c#0@fr", lang="fr")
    server.fail_next("drop_after_store", method="POST", path="/api/v1/statuses")
    with pytest.raises(PublishAmbiguous):
        pub.publish(item)
    receipt = pub.publish(item)
    assert [s["id"] for s in server.statuses(FR)] == [receipt.remote_id]
    keys = [c.headers.get("Idempotency-Key") for c in server.calls if c.path == "/api/v1/statuses"]
    assert len(keys) == 2 and keys[0] == keys[1] == idempotency_key(item)


def test_two_deliveries_of_the_same_text_are_two_statuses(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    """Mastodon refuses no duplicate text: only the key makes a retry the same post."""
    pub.publish(_item("Même texte", key="a#0@fr"))
    pub.publish(_item("Même texte", key="b#0@fr"))
    assert len(server.statuses(FR)) == 2


def test_the_key_of_a_deleted_status_does_not_post_it_again(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    """Within the hour the instance remembers the key, a retry of a status that was deleted
    since is refused (404), not posted again."""
    item = _item("Retiré", key="r#0@fr")
    receipt = pub.publish(item)
    pub.delete(FR, receipt.remote_id)
    with pytest.raises(PublishRejected):
        pub.publish(item)
    assert server.statuses(FR) == []


# -- errors --------------------------------------------------------------------------------------


def test_a_rate_limit_retries_at_the_instances_reset(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    reset = int(time.time()) + 1200
    server.fail_next("429", method="POST", path="/api/v1/statuses", reset=reset)
    with pytest.raises(PublishRateLimited) as raised:
        pub.publish(_item("Bonjour"))
    assert raised.value.retry_at == datetime.fromtimestamp(reset, UTC)
    assert server.statuses(FR) == []


def test_the_status_limit_is_a_rate_limit_until_its_window_ends(server: MastodonServer) -> None:
    """The instance's own rule (here 2 statuses per 3 hours): the reset of that window."""
    server.status_limit = 2
    pub = _publisher(server)
    pub.publish(_item("Un"))
    pub.publish(_item("Deux"))
    first = server.statuses(FR)[0]["created_at"]
    with pytest.raises(PublishRateLimited) as raised:
        pub.publish(_item("Trois"))
    expected = datetime.fromtimestamp(first + 3 * 3600, UTC)
    assert abs((raised.value.retry_at - expected).total_seconds()) < 1


def test_a_reset_beyond_the_longest_window_is_not_believed(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    server.fail_next("429", method="POST", path="/api/v1/statuses", reset=int(time.time()) + 10**7)
    with pytest.raises(PublishRateLimited) as raised:
        pub.publish(_item("Bonjour"))
    assert raised.value.retry_at < datetime.now(UTC) + timedelta(minutes=6)


def test_a_revoked_token_is_an_auth_failure_that_names_no_token(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    server.revoke(FR)
    with pytest.raises(PublishAuthFailed, match="401") as raised:
        pub.publish(_item("Bonjour"))
    assert TOKEN not in str(raised.value) and TOKEN not in repr(pub)
    assert raised.value.__cause__ is not None


def test_a_token_without_write_scope_is_an_auth_failure(server: MastodonServer) -> None:
    server.account(FR).scopes = frozenset({"read"})
    with pytest.raises(PublishAuthFailed, match="outside the authorized scopes"):
        _publisher(server).publish(_item("Bonjour"))
    assert server.statuses(FR) == []


def test_a_text_over_the_instances_limit_is_rejected_with_its_message(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    """501 characters: over 500. A URL counts 23 whatever its length, so the next text fits."""
    with pytest.raises(PublishRejected, match="character limit of 500 exceeded"):
        pub.publish(_item("a" * 501))
    long_url = "https://www.diplomatie.gouv.fr/" + "x" * 200
    pub.publish(_item("a" * 476 + " " + long_url))
    assert len(server.statuses(FR)) == 1


@pytest.mark.parametrize("status", ["500", "502", "503", "504"])
def test_a_5xx_on_posting_is_ambiguous(
    server: MastodonServer, pub: MastodonPublisher, status: str
) -> None:
    """JSON or the proxy's HTML page: the status may exist."""
    server.fail_next(status, method="POST", path="/api/v1/statuses")
    with pytest.raises(PublishAmbiguous, match=status):
        pub.publish(_item("Bonjour"))


def test_a_5xx_on_uploading_is_not_ambiguous(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    server.fail_next("503", method="POST", path="/api/v2/media")
    with pytest.raises(PublishError) as raised:
        pub.publish(_item("Image", media=(MediaItem(Path("a.png"), "alt", _png()),)))
    assert type(raised.value) is PublishError
    assert _posts(server) == []


def test_an_answer_cut_in_half_is_ambiguous(server: MastodonServer, pub: MastodonPublisher) -> None:
    server.fail_next("malformed_after_store", method="POST", path="/api/v1/statuses")
    with pytest.raises(PublishAmbiguous):
        pub.publish(_item("Bonjour", key="m#0@fr"))
    assert len(server.statuses(FR)) == 1


def test_no_answer_within_the_timeout_is_ambiguous(server: MastodonServer) -> None:
    pub = _publisher(server, timeout=0.3)
    pub.whoami(FR)
    server.fail_next("hang", method="POST", path="/api/v1/statuses")
    started = time.monotonic()
    with pytest.raises(PublishAmbiguous, match="did not answer in time"):
        pub.publish(_item("Bonjour"))
    assert time.monotonic() - started < 5


def test_an_answer_trickling_in_ends_at_the_deadline(server: MastodonServer) -> None:
    """One byte every 0.1 s never trips the read timeout (0.3 s): the request still ends
    after 3 × the timeout, ambiguous (the status was stored)."""
    pub = _publisher(server, timeout=0.3)
    pub.whoami(FR)
    server.fail_next("trickle", method="POST", path="/api/v1/statuses", seconds=0.1)
    started = time.monotonic()
    with pytest.raises(PublishAmbiguous, match="did not answer in time"):
        pub.publish(_item("Bonjour"))
    assert 0.8 < time.monotonic() - started < 3
    assert len(server.statuses(FR)) == 1
    assert pub.whoami(FR) == "francediplo"  # the next request goes through


def test_the_deadline_holds_through_an_http_proxy(
    server: MastodonServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The instance reached through a proxy (the fake stands in for both): its connections
    are watched too."""
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, server.url)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    account = MastodonAccount("http://mastodon.invalid", Secret(TOKEN), "francediplo")
    pub = MastodonPublisher({FR: account}, timeout=0.3)
    assert pub.whoami(FR) == "francediplo"
    assert server.calls[-1].headers["Host"] == "mastodon.invalid"  # it went by the proxy
    server.fail_next("trickle", method="POST", path="/api/v1/statuses", seconds=0.1)
    started = time.monotonic()
    with pytest.raises(PublishAmbiguous, match="did not answer in time"):
        pub.publish(_item("Bonjour"))
    assert time.monotonic() - started < 3


def test_an_instance_that_cannot_be_reached_is_no_ambiguity() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pub = MastodonPublisher(
        {FR: MastodonAccount(f"http://127.0.0.1:{port}", Secret(TOKEN), "francediplo")},
        timeout=0.5,
    )
    with pytest.raises(PublishError, match="nothing was sent") as raised:
        pub.publish(_item("Bonjour"))
    assert type(raised.value) is PublishError


def test_a_token_of_another_user_sends_nothing(server: MastodonServer) -> None:
    """Two account ids sharing a token by mistake: the handle accounts.yaml gives decides."""
    pub = _publisher(server, handle="francediplo_ar")
    with pytest.raises(PublishAuthFailed, match="belongs to @francediplo"):
        pub.publish(_item("Bonjour"))
    assert _posts(server) == []


def test_an_account_without_a_token_is_a_config_error(pub: MastodonPublisher) -> None:
    with pytest.raises(ConfigError, match="DIPLOBOT_SOMEONE_ACCESS_TOKEN"):
        pub.whoami("someone")


# -- reading back --------------------------------------------------------------------------------


def test_find_reads_the_text_back_from_html(server: MastodonServer, pub: MastodonPublisher) -> None:
    """Mentions (local and remote), a hashtag, a link Mastodon shortens, escaped characters
    and paragraphs: the status is found by the text that was sent, and a text differing by
    its link is not."""
    since = _since()
    text = (
        "Avec @francediplo_es et @UN@mastodon.un.org pour la #COP31 à Belém 🌍 l'accord "
        '"historique" <enfin> & plus : https://www.diplomatie.gouv.fr/fr/politique-etrangere/'
        "climat-et-environnement/\n\nالسلام عليكم\nfin"
    )
    sent = pub.publish(_item(text))
    answer = requests.get(f"{server.url}/api/v1/statuses/{sent.remote_id}", timeout=5).json()
    assert "<p>" in answer["content"] and "&lt;enfin&gt;" in answer["content"]
    assert '<span class="ellipsis">' in answer["content"]  # the link as Mastodon shortens it
    (listed,) = pub.recent(FR, since)
    assert listed.text == text
    assert pub.find(_item(text), since) == sent
    assert pub.find(_item(text.replace("climat-et", "climat-ou")), since) is None


def test_a_mention_of_the_instances_own_account_with_its_domain_is_found(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    """Mastodon shows ``@user@its-own-host`` as ``@user``: still the text that was sent."""
    host = server.url.split("//")[1].split(":")[0]  # the instance's domain
    text = f"Avec @francediplo_es@{host} à Belém"
    sent = pub.publish(_item(text))
    assert pub.recent(FR, _since())[0].text == "Avec @francediplo_es à Belém"
    assert pub.find(_item(text), _since()) == sent


def test_an_image_named_without_its_type_is_sent_as_what_it_is(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    """The type is read from the bytes: a file called ``carte`` (or ``photo.jpg`` holding a
    PNG) is declared ``image/png``."""
    pub.publish(_item("Carte", media=(MediaItem(Path("carte"), "Carte", _png()),)))
    pub.publish(_item("Photo", media=(MediaItem(Path("photo.jpg"), "Photo", _png()),)))
    declared = [server.media(m["id"]).declared for s in server.statuses(FR) for m in s["media"]]
    assert declared == ["image/png", "image/png"]


def test_plain_text_of_a_status_as_mastodon_renders_it() -> None:
    """A status's content as a Mastodon 4.3 instance gives it (mastodon.social)."""
    content = (
        '<p>Bonjour <span class="h-card" translate="no"><a href="https://mastodon.un.org/@UN" '
        'class="u-url mention">@<span>UN</span></a></span> ! <a href="https://mastodon.social'
        '/tags/COP31" class="mention hashtag" rel="tag">#<span>COP31</span></a> &amp; '
        '<a href="https://www.diplomatie.gouv.fr/fr/politique-etrangere/" target="_blank" '
        'rel="nofollow noopener" translate="no"><span class="invisible">https://www.</span>'
        '<span class="ellipsis">diplomatie.gouv.fr/fr/politiqu</span><span class="invisible">'
        "e-etrangere/</span></a></p><p>l&#39;été<br />fin</p>"
    )
    accts = {"https://mastodon.un.org/@UN": "UN@mastodon.un.org"}
    assert plain_text(content, accts) == (
        "Bonjour @UN@mastodon.un.org ! #COP31 & "
        "https://www.diplomatie.gouv.fr/fr/politique-etrangere/\n\nl'été\nfin"
    )


def test_recent_pages_through_the_link_header_and_stops_at_since(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    old = time.time() - 7200
    server.add_status(FR, "Ancien", created_at=old)
    since = datetime.now(UTC) - timedelta(minutes=5)
    ids = [server.add_status(FR, f"Message {n}") for n in range(45)]
    server.add_status(OTHER, "Pas le nôtre")
    found = pub.recent(FR, since)
    assert [p.remote_id for p in found] == list(reversed(ids))
    pages = [c for c in server.calls if c.path.endswith("/statuses") and c.method == "GET"]
    assert len(pages) == 2 and "max_id" in pages[1].params


def test_delete_of_a_status_already_gone_is_no_error(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    receipt = pub.publish(_item("Retiré"))
    pub.delete(FR, receipt.remote_id)
    pub.delete(FR, receipt.remote_id)
    assert server.statuses(FR) == []


def test_delete_that_the_instance_does_not_confirm_is_an_error(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    receipt = pub.publish(_item("Reste"))
    server.fail_next("503", method="DELETE")
    with pytest.raises(PublishError, match="503"):
        pub.delete(FR, receipt.remote_id)
    assert len(server.statuses(FR)) == 1


def test_an_unreadable_timeline_is_an_error_not_a_miss(
    server: MastodonServer, pub: MastodonPublisher
) -> None:
    """A miss would send the post again: reconciliation must fail instead."""
    pub.whoami(FR)
    server.fail_next("500", method="GET", path="/api/v1/accounts/*/statuses")
    with pytest.raises(PublishError, match="statuses failed"):
        pub.find(_item("Bonjour"), _since())


# -- the instance ------------------------------------------------------------------------------


def test_whoami_and_the_instances_limit(server: MastodonServer, pub: MastodonPublisher) -> None:
    assert pub.whoami(FR) == "francediplo"
    assert pub.max_characters(FR) == 500
    assert pub.check(FR) == []
    server.max_characters = 5000
    assert pub.max_characters(FR) == 5000
    assert "5000 characters" in pub.check(FR)[0]
    server.max_characters = 400
    assert "fewer than the 500" in pub.check(FR)[0]


# -- settings ------------------------------------------------------------------------------------


class _Account:
    def __init__(self, handle: str, instance: str | None) -> None:
        self.platform, self.lang, self.handle, self.instance = "mastodon", "fr", handle, instance


def test_settings_read_each_accounts_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    env = {
        "DIPLOBOT_FRANCEDIPLO_FR_ACCESS_TOKEN_FILE": str(token_file),
        "DIPLOBOT_MASTODON_TIMEOUT": "7",
    }
    found = read_settings(Settings.from_env(env), [FR, OTHER])
    assert found.tokens[FR].reveal() == TOKEN
    assert found.missing == {OTHER: "DIPLOBOT_FRANCEDIPLO_ES_ACCESS_TOKEN"}
    assert found.timeout == 7
    assert TOKEN not in repr(found)
    made = publisher(found, {FR: _Account("francediplo", "https://mastodon.social")})
    assert made is not None and made.timeout == 7 and TOKEN not in repr(made)
    assert publisher(found, {OTHER: _Account("x", "https://mastodon.social")}) is None


def test_an_account_without_an_instance_is_a_config_error() -> None:
    found = read_settings(Settings.from_env({"DIPLOBOT_FRANCEDIPLO_FR_ACCESS_TOKEN": "t"}), [FR])
    with pytest.raises(ConfigError, match="instance: https://"):
        publisher(found, {FR: _Account("francediplo", None)})


def test_a_bad_timeout_names_the_variable() -> None:
    settings = Settings.from_env({"DIPLOBOT_MASTODON_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="DIPLOBOT_MASTODON_TIMEOUT"):
        read_settings(settings, [FR])


# -- through the deliverer and its ledger ---------------------------------------------------------


def _ledger(tmp_path: Path, parts: int) -> Ledger:
    ledger = open_store(state_url(tmp_path, None)).ledger
    due = datetime.now(UTC)
    ledger.ensure(
        [
            NewDelivery("accord", FR, n, "mastodon", "fr", due, f"Accord ({n}/{parts})")
            for n in range(1, parts + 1)
        ]
    )
    return ledger


def test_a_thread_whose_middle_answer_was_lost_is_posted_once(
    server: MastodonServer, pub: MastodonPublisher, tmp_path: Path
) -> None:
    """Part 2 stored, its answer lost: reconciliation finds it on the account, part 3 replies
    to it; three statuses, each POSTED once."""
    ledger = _ledger(tmp_path, 3)
    server.fail_next("drop_after_store", method="POST", path="/api/v1/statuses", after=1)
    done = Deliverer(ledger, pub, tmp_path, {FR: "francediplo"}).deliver_chain(
        ledger.rows("accord", channel="mastodon")
    )
    assert [r.state for r in done] == [State.POSTED] * 3
    statuses = server.statuses(FR)
    assert [s["id"] for s in statuses] == [r.remote_id for r in done]
    assert [s["reply_to"] for s in statuses] == [None, done[0].remote_id, done[1].remote_id]
    assert [s["language"] for s in statuses] == ["fr"] * 3


def test_a_lost_answer_the_listing_misses_is_not_posted_twice(
    server: MastodonServer, pub: MastodonPublisher, tmp_path: Path
) -> None:
    """The instance's clock is 10 minutes behind: the stored status looks older than the
    claim and reconciliation misses it, so the delivery is sent again — with the same
    Idempotency-Key, and the instance answers the status it already has."""
    ledger = _ledger(tmp_path, 1)
    server.clock_skew = -600
    server.fail_next("drop_after_store", method="POST", path="/api/v1/statuses")
    later = datetime.now(UTC) + timedelta(hours=1)
    deliverer = Deliverer(ledger, pub, tmp_path, {FR: "francediplo"})
    (row,) = ledger.rows("accord", channel="mastodon")
    assert deliverer.deliver(row, None).state is State.PENDING  # not found: retried later
    retry = replace(deliverer, clock=lambda: later)
    done = retry.deliver(ledger.get(row.id), None)
    (status,) = server.statuses(FR)
    assert done.state is State.POSTED and done.remote_id == status["id"]
