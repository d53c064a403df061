"""The Bluesky publisher (``bot/platforms/bluesky.py``) through the real atproto SDK against
the fake PDS (``tests/servers/bluesky.py``): what only Bluesky has — facets at UTF-8 byte
offsets, record keys derived from the delivery, root and parent, images recompressed to the
blob limit, saved sessions — and how its failures map. The generic behaviour is in
``test_publisher_contract.py``."""

from __future__ import annotations

import io
import os
import random
import re
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from servers.bluesky import BlueskyServer

from bot.errors import (
    ConfigError,
    PublishAmbiguous,
    PublishAuthFailed,
    PublishRateLimited,
    PublishRejected,
)
from bot.platforms.bluesky import BLOB_LIMIT, BlueskyPublisher, read_settings, tid_for
from bot.publish.base import MediaItem, Outgoing, Receipt
from bot.publish.resize import describe, fit
from bot.settings import Secret, Settings

FR = "francediplo"
HANDLE = "francediplo.bsky.social"
PASSWORD = "abcd-efgh-CANARY-ijkl"
ELYSEE = ("elysee.fr", "did:plc:elyseeelyseeelyseeelysee")
CREATE = "com.atproto.repo.createRecord"
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


@pytest.fixture
def pds() -> Iterator[BlueskyServer]:
    with BlueskyServer(accounts={FR: (HANDLE, PASSWORD)}, others=dict([ELYSEE])) as server:
        yield server
        assert not server.errors


def make(pds: BlueskyServer, tmp_path: Path, **kwargs: object) -> BlueskyPublisher:
    options: dict[str, object] = {
        "pds_url": pds.url,
        "timeout": 2.0,
        "session_dir": tmp_path / "sessions",
    }
    options.update(kwargs)
    return BlueskyPublisher(
        {FR: Secret(PASSWORD)},
        {FR: (HANDLE, None)},
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def bsky(pds: BlueskyServer, tmp_path: Path) -> BlueskyPublisher:
    return make(pds, tmp_path)


def post(text: str, key: str = "", **kwargs: object) -> Outgoing:
    return Outgoing(FR, HANDLE, text, key=key, **kwargs)  # type: ignore[arg-type]


def nsids(pds: BlueskyServer) -> list[str]:
    return [c.path.removeprefix("/xrpc/") for c in pds.calls]


# -- record keys ----------------------------------------------------------------------------


def test_the_record_key_is_a_valid_tid_derived_from_the_delivery_key() -> None:
    keys = [f"2026-11-24-cop31#{part}@{account}" for part in (1, 2) for account in ("fr", "en")]
    tids = [tid_for(k) for k in keys]
    assert all(TID.match(t) for t in tids)
    assert tids == [tid_for(k) for k in keys]  # the same every time
    assert len(set(tids)) == len(tids)
    # Its time lies in 2023: never in the future, never among the keys a PDS gives today.
    value = 0
    for char in tids[0]:
        value = value * 32 + "234567abcdefghijklmnopqrstuvwxyz".index(char)
    moment = datetime.fromtimestamp((value >> 10) / 1_000_000, UTC)
    assert datetime(2023, 1, 1, tzinfo=UTC) <= moment < datetime(2024, 3, 1, tzinfo=UTC)


def test_a_delivery_is_created_at_its_derived_key(
    pds: BlueskyServer, bsky: BlueskyPublisher
) -> None:
    receipt = bsky.publish(post("Bonjour", key="p#1@francediplo"))
    (stored,) = pds.posts(FR)
    assert stored["rkey"] == tid_for("p#1@francediplo")
    assert receipt.remote_id == stored["uri"]
    assert receipt.url == f"https://bsky.app/profile/{HANDLE}/post/{stored['rkey']}"


@pytest.mark.parametrize("duplicate_rkey", ["500", "explicit"])
def test_a_retry_after_a_lost_answer_never_posts_twice(tmp_path: Path, duplicate_rkey: str) -> None:
    """The post is stored, the answer lost: ambiguous; ``find`` reads the key and knows it;
    a retry all the same meets the taken key (bsky.social's 500, or the explicit error) and
    reads the post back: one post, the same receipt."""
    with BlueskyServer(accounts={FR: (HANDLE, PASSWORD)}, duplicate_rkey=duplicate_rkey) as pds:
        bsky = make(pds, tmp_path)
        item = post("Accord signé à Belém", key="cop31#1@francediplo", lang="fr")
        since = datetime.now(UTC) - timedelta(minutes=1)
        pds.fail_next("drop_after_store", nsid=CREATE)
        with pytest.raises(PublishAmbiguous):
            bsky.publish(item)
        found = bsky.find(item, since)
        again = bsky.publish(item)
        assert found is not None and again == found
        assert [p["uri"] for p in pds.posts(FR)] == [found.remote_id]
        assert not pds.errors


def test_find_by_key_checks_the_text_and_the_reply(
    pds: BlueskyServer, bsky: BlueskyPublisher
) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    sent = bsky.publish(post("Un", key="t#1@francediplo"))
    assert bsky.find(post("Un", key="t#1@francediplo"), since) == sent
    assert bsky.find(post("Autre texte", key="t#1@francediplo"), since) is None
    assert bsky.find(post("Un", key="t#2@francediplo"), since) is None  # nothing at that key
    assert bsky.find(post("Un", key="t#1@francediplo", reply_to=sent), since) is None
    assert [c for c in nsids(pds) if c == "com.atproto.repo.listRecords"] == []


def test_a_server_error_with_nothing_stored_is_ambiguous(
    pds: BlueskyServer, bsky: BlueskyPublisher
) -> None:
    pds.fail_next("500", nsid=CREATE)
    with pytest.raises(PublishAmbiguous):
        bsky.publish(post("Rien", key="n#1@francediplo"))
    assert pds.posts(FR) == []
    assert bsky.find(post("Rien", key="n#1@francediplo"), datetime.now(UTC)) is None


# -- rich text ------------------------------------------------------------------------------


def test_facets_point_at_the_right_utf8_bytes_after_arabic_and_emoji(
    pds: BlueskyServer, bsky: BlueskyPublisher
) -> None:
    """Arabic (2 bytes a letter) and emoji (4 bytes, a flag 8) before each entity: the byte
    ranges the PDS stores cut exactly the mention, the tag and the link out of the text."""
    text = (
        "مرحبا بكم 🇫🇷👋🏽 @elysee.fr و #COP31 — "
        "التفاصيل: https://www.diplomatie.gouv.fr/ar/cop31 ✨ @unknown.example.com"
    )
    bsky.publish(post(text, key="ar#1@francediplo", lang="ar"))
    (stored,) = pds.posts(FR)
    raw = stored["text"].encode("utf-8")
    cut = {
        facet["features"][0]["$type"].split("#")[1]: (
            raw[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode("utf-8"),
            facet["features"][0],
        )
        for facet in stored["facets"]
    }
    assert cut["mention"] == (
        "@elysee.fr",
        {"$type": "app.bsky.richtext.facet#mention", "did": ELYSEE[1]},
    )
    assert cut["tag"] == ("#COP31", {"$type": "app.bsky.richtext.facet#tag", "tag": "COP31"})
    assert cut["link"] == (
        "https://www.diplomatie.gouv.fr/ar/cop31",
        {"$type": "app.bsky.richtext.facet#link", "uri": "https://www.diplomatie.gouv.fr/ar/cop31"},
    )
    assert len(stored["facets"]) == 3  # the handle that does not resolve stays text
    starts = [f["index"]["byteStart"] for f in stored["facets"]]
    assert starts == sorted(starts) and starts[0] > len(text.split("@")[0])  # bytes, not chars
    assert stored["langs"] == ["ar"]


def test_an_arabic_hashtag_is_a_tag(pds: BlueskyServer, bsky: BlueskyPublisher) -> None:
    bsky.publish(post("يوم #الفرانكوفونية 🎉", lang="ar"))
    (stored,) = pds.posts(FR)
    (facet,) = stored["facets"]
    raw = stored["text"].encode()
    assert raw[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode() == (
        "#الفرانكوفونية"
    )
    assert facet["features"][0]["tag"] == "الفرانكوفونية"


def test_the_language_tag_is_the_posts_bcp47_tag(
    pds: BlueskyServer, bsky: BlueskyPublisher
) -> None:
    bsky.publish(post("外交部欢迎", lang="zh-Hans"))
    bsky.publish(post("Sem idioma"))
    assert [p["langs"] for p in pds.posts(FR)] == [["zh-Hans"], None]


def test_a_text_over_300_graphemes_is_refused_by_the_pds(
    pds: BlueskyServer, bsky: BlueskyPublisher
) -> None:
    with pytest.raises(PublishRejected, match="300 graphemes"):
        bsky.publish(post("é" * 301))
    bsky.publish(post("👍🏽" * 300))  # 300 graphemes, 2,400 bytes: fits
    assert len(pds.posts(FR)) == 1


# -- threads --------------------------------------------------------------------------------


def test_each_reply_names_the_threads_root_and_its_parent(
    pds: BlueskyServer, bsky: BlueskyPublisher
) -> None:
    first = bsky.publish(post("1/3", key="th#1@francediplo"))
    second = bsky.publish(post("2/3", key="th#2@francediplo", reply_to=first))
    third = bsky.publish(post("3/3", key="th#3@francediplo", reply_to=second))
    replies = [p["reply"] for p in pds.posts(FR)]
    assert replies == [
        None,
        {"root": first.remote_id, "parent": first.remote_id},
        {"root": first.remote_id, "parent": second.remote_id},
    ]
    assert third.root == first.remote_id


def test_a_reply_from_another_process_reads_the_cids_it_needs(
    pds: BlueskyServer, bsky: BlueskyPublisher, tmp_path: Path
) -> None:
    """The receipts come from the ledger: a new publisher reads the CIDs of root and parent
    (the PDS checks them)."""
    first = bsky.publish(post("1/2"))
    later = make(pds, tmp_path)
    later.publish(post("2/2", reply_to=Receipt(first.remote_id, first.url)))
    assert pds.posts(FR)[1]["reply"] == {"root": first.remote_id, "parent": first.remote_id}
    assert pds.rejections == []


def test_a_reply_to_a_deleted_post_is_refused(pds: BlueskyServer, bsky: BlueskyPublisher) -> None:
    first = bsky.publish(post("1/2"))
    bsky.delete(FR, first.remote_id)
    fresh = make(pds, Path(str(bsky.session_dir)).parent)
    with pytest.raises(PublishRejected, match="not on Bluesky any more"):
        fresh.publish(post("2/2", reply_to=first))


# -- images ---------------------------------------------------------------------------------


def _noise(width: int, height: int, fmt: str = "PNG") -> bytes:
    """An image that does not compress (random pixels)."""
    rng = random.Random(11)
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def test_an_image_over_the_blob_limit_is_resized_not_refused(
    pds: BlueskyServer, bsky: BlueskyPublisher, tmp_path: Path
) -> None:
    big = _noise(1200, 800)
    assert len(big) > 2 * BLOB_LIMIT
    path = tmp_path / "belem.png"
    path.write_bytes(big)
    small = tmp_path / "logo.png"
    small.write_bytes(_noise(40, 20))
    bsky.publish(
        post(
            "La COP31 en images",
            media=(
                MediaItem(path, "La délégation française à Belém"),
                MediaItem(small, None, data=small.read_bytes()),
            ),
        )
    )
    (stored,) = pds.posts(FR)
    resized, logo = stored["images"]
    assert resized["alt"] == "La délégation française à Belém"
    assert resized["mime"] == "image/jpeg" and resized["size"] <= BLOB_LIMIT
    width, height = resized["aspectRatio"]["width"], resized["aspectRatio"]["height"]
    assert abs(width / height - 1.5) < 0.01
    assert describe(resized["data"]).width == width
    assert logo == {
        "alt": "",
        "mime": "image/png",
        "size": small.stat().st_size,
        "data": small.read_bytes(),
        "aspectRatio": {"$type": "app.bsky.embed.defs#aspectRatio", "width": 40, "height": 20},
    }


def test_fit_keeps_small_images_and_shrinks_large_ones() -> None:
    small = _noise(10, 10)
    assert fit(small, 10_000) is small
    shrunk = fit(_noise(600, 600), 50_000)
    assert len(shrunk) <= 50_000 and describe(shrunk).mime == "image/jpeg"
    with Image.open(io.BytesIO(shrunk)) as image:
        assert image.width == image.height
    with pytest.raises(PublishRejected, match="cannot be read"):
        fit(b"not an image" * 1000, 100)
    with pytest.raises(PublishRejected, match="cannot be made to fit"):
        fit(_noise(300, 300), 200)


def test_a_turned_photo_has_the_aspect_ratio_it_is_shown_with() -> None:
    """A phone photo stored 300×200 with EXIF orientation 6 (turn 90°) is shown 200×300:
    its aspect ratio says so, before and after recompression."""
    image = Image.frombytes("RGB", (300, 200), random.Random(3).randbytes(300 * 200 * 3))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=95)
    photo = out.getvalue()
    assert (describe(photo).width, describe(photo).height) == (200, 300)
    shrunk = fit(photo, len(photo) // 2)
    assert (describe(shrunk).width, describe(shrunk).height) == (200, 300)


def test_an_upload_the_pds_refuses_is_rejected(tmp_path: Path) -> None:
    with BlueskyServer(accounts={FR: (HANDLE, PASSWORD)}, upload_limit=1000) as pds:
        path = tmp_path / "a.png"
        path.write_bytes(_noise(100, 100))
        with pytest.raises(PublishRejected, match=r"a\.png"):
            make(pds, tmp_path).publish(post("Photo", media=(MediaItem(path, "x"),)))
        assert pds.posts(FR) == []


# -- sessions -------------------------------------------------------------------------------


def test_the_session_is_saved_and_reused_by_the_next_process(
    pds: BlueskyServer, tmp_path: Path
) -> None:
    make(pds, tmp_path).publish(post("Un"))
    (saved,) = (tmp_path / "sessions").iterdir()
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert PASSWORD not in saved.read_text()
    make(pds, tmp_path).publish(post("Deux"))
    make(pds, tmp_path).whoami(FR)
    assert pds.logins(FR) == 1
    assert nsids(pds).count("com.atproto.server.createSession") == 1


def test_a_session_saved_for_another_pds_is_not_used(pds: BlueskyServer, tmp_path: Path) -> None:
    make(pds, tmp_path).publish(post("Un"))
    with BlueskyServer(accounts={FR: (HANDLE, PASSWORD)}) as other:
        make(other, tmp_path).publish(post("Deux"))
        assert other.logins(FR) == 1 and [p["text"] for p in other.posts(FR)] == ["Deux"]
    assert [p["text"] for p in pds.posts(FR)] == ["Un"]


def test_an_expiring_access_token_is_refreshed_not_logged_in_again(tmp_path: Path) -> None:
    """The SDK refreshes an access token 15 minutes before it expires: with 10-minute tokens,
    each call refreshes (and the refresh token rotates); one login in all."""
    with BlueskyServer(accounts={FR: (HANDLE, PASSWORD)}, access_ttl=600) as pds:
        make(pds, tmp_path).publish(post("Un"))
        make(pds, tmp_path).publish(post("Deux"))
        assert pds.logins(FR) == 1
        assert nsids(pds).count("com.atproto.server.refreshSession") >= 2
        assert len(pds.posts(FR)) == 2 and not pds.errors


def test_a_session_the_pds_ended_is_replaced_by_a_new_login(
    pds: BlueskyServer, bsky: BlueskyPublisher
) -> None:
    bsky.publish(post("Avant"))
    pds.expire_sessions(FR)
    bsky.publish(post("Après"))
    assert [p["text"] for p in pds.posts(FR)] == ["Avant", "Après"]
    assert pds.logins(FR) == 2
    # The refused create (ExpiredToken) was made again once the session was new.
    assert nsids(pds).count(CREATE) == 3


def test_a_session_another_process_refreshed_is_taken_from_the_file(
    pds: BlueskyServer, tmp_path: Path
) -> None:
    """Two processes share the saved session; one refreshes it (the refresh token rotates):
    the other, refused, reads the file rather than logging in again."""
    service, cli = make(pds, tmp_path), make(pds, tmp_path)
    service.publish(post("Un"))
    cli.whoami(FR)  # the saved session, no login
    pds.expire_access(FR)
    cli.whoami(FR)  # refused, refreshes: the session both hold rotates, saved by cli
    service.publish(post("Deux"))  # refused; its refresh token is spent; the file is live
    assert pds.logins(FR) == 1
    assert nsids(pds).count("com.atproto.server.refreshSession") == 2  # cli's, service's
    assert [p["text"] for p in pds.posts(FR)] == ["Un", "Deux"]


def test_a_revoked_app_password_is_an_auth_failure_without_the_password(
    pds: BlueskyServer, bsky: BlueskyPublisher
) -> None:
    bsky.publish(post("Avant"))
    pds.revoke(FR)
    with pytest.raises(PublishAuthFailed) as raised:
        bsky.publish(post("Après"))
    assert PASSWORD not in str(raised.value) and PASSWORD not in repr(bsky)
    assert "APP_PASSWORD" in str(raised.value)
    assert [p["text"] for p in pds.posts(FR)] == ["Avant"]


def test_the_login_rate_limit_carries_its_reset(tmp_path: Path) -> None:
    with BlueskyServer(accounts={FR: (HANDLE, PASSWORD)}, login_limit=1) as pds:
        make(pds, tmp_path, session_dir=None).whoami(FR)
        before = datetime.now(UTC)
        with pytest.raises(PublishRateLimited) as raised:
            make(pds, tmp_path, session_dir=None).whoami(FR)
        assert before + timedelta(minutes=4) < raised.value.retry_at
        assert raised.value.retry_at <= before + timedelta(minutes=5, seconds=2)


def test_a_rate_limited_post_retries_at_the_reset(
    pds: BlueskyServer, bsky: BlueskyPublisher
) -> None:
    reset = int(datetime.now(UTC).timestamp()) + 120
    pds.fail_next("429", nsid=CREATE, reset=reset)
    with pytest.raises(PublishRateLimited) as raised:
        bsky.publish(post("Plus tard"))
    assert raised.value.retry_at == datetime.fromtimestamp(reset, UTC)
    assert pds.posts(FR) == []


def test_credentials_of_another_account_send_nothing(pds: BlueskyServer, tmp_path: Path) -> None:
    wrong = BlueskyPublisher(
        {FR: Secret(PASSWORD)},
        {FR: ("francediplo-en.bsky.social", None)},
        pds_url=pds.url,
        session_dir=tmp_path,
    )
    # It logs in with the handle accounts.yaml gives: the PDS does not know it.
    with pytest.raises(PublishAuthFailed):
        wrong.publish(post("Non"))
    did = pds.account(FR).did
    other = BlueskyPublisher(
        {FR: Secret(PASSWORD)},
        {FR: (HANDLE, "did:plc:someoneelsesomeoneelse")},
        pds_url=pds.url,
        session_dir=tmp_path,
    )
    with pytest.raises(PublishAuthFailed):  # the PDS refuses a login by an unknown DID
        other.publish(post("Non"))
    assert did and pds.posts(FR) == []


def test_a_hanging_pds_ends_in_a_timeout(pds: BlueskyServer, tmp_path: Path) -> None:
    bsky = make(pds, tmp_path, timeout=0.5)
    bsky.whoami(FR)
    pds.fail_next("hang", nsid=CREATE)
    with pytest.raises(PublishAmbiguous, match="in time"):
        bsky.publish(post("Lent"))


def test_an_answer_that_trickles_ends_at_the_deadline(pds: BlueskyServer, tmp_path: Path) -> None:
    """One byte every 0.2 s never trips a 0.5 s read timeout: the call ends after 3 × the
    timeout, ambiguous; the post was stored, and the look-up at its key finds it."""
    bsky = make(pds, tmp_path, timeout=0.5)
    bsky.whoami(FR)
    pds.fail_next("trickle", nsid=CREATE, seconds=0.2)
    item = post("Lentement", key="slow#1@francediplo")
    started = datetime.now(UTC)
    with pytest.raises(PublishAmbiguous, match=r"within 1\.5 s"):
        bsky.publish(item)
    assert datetime.now(UTC) - started < timedelta(seconds=3)
    found = bsky.find(item, started)
    assert found is not None and [p["uri"] for p in pds.posts(FR)] == [found.remote_id]


def test_check_says_what_an_operator_should_fix(pds: BlueskyServer, tmp_path: Path) -> None:
    from bot.publish.base import AccountCheck

    did = pds.account(FR).did
    pinned = BlueskyPublisher(
        {FR: Secret(PASSWORD)}, {FR: (HANDLE, did)}, pds_url=pds.url, session_dir=tmp_path
    )
    assert isinstance(pinned, AccountCheck)
    assert pinned.check(FR) == []
    unpinned = make(pds, tmp_path, session_dir=tmp_path / "missing" / "x")
    (tmp_path / "missing").write_text("a file where the folder should be")
    said = unpinned.check(FR)
    assert f"add `did: {did}`" in said[0]
    assert "cannot be saved" in said[1] and "DIPLOBOT_BLUESKY_SESSION_DIR" in said[1]
    assert all(PASSWORD not in line for line in said)


# -- settings -------------------------------------------------------------------------------


def test_settings_read_app_passwords_and_say_what_is_missing(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text(PASSWORD + "\n")
    env = {
        "DIPLOBOT_FRANCEDIPLO_APP_PASSWORD_FILE": str(secret_file),
        "DIPLOBOT_BLUESKY_PDS_URL": "http://127.0.0.1:9/",
        "DIPLOBOT_BLUESKY_TIMEOUT": "3",
        "DIPLOBOT_STATE": str(tmp_path / "state" / "db.sqlite"),
    }
    found = read_settings(Settings.from_env(env), [FR, "francediplo_EN"])
    assert found.passwords[FR].reveal() == PASSWORD
    assert found.missing == {"francediplo_EN": "DIPLOBOT_FRANCEDIPLO_EN_APP_PASSWORD"}
    assert found.pds_url == "http://127.0.0.1:9" and found.timeout == 3.0
    assert found.session_dir == (tmp_path / "state" / "bluesky").resolve()
    assert PASSWORD not in repr(found) and found.ca_bundle is None
    bundle = {"REQUESTS_CA_BUNDLE": "/etc/ssl/ministry.pem"}
    assert read_settings(Settings.from_env(bundle), [FR]).ca_bundle == "/etc/ssl/ministry.pem"
    with pytest.raises(ConfigError, match="DIPLOBOT_BLUESKY_TIMEOUT"):
        read_settings(Settings.from_env({"DIPLOBOT_BLUESKY_TIMEOUT": "soon"}), [FR])
    chosen = {"DIPLOBOT_BLUESKY_SESSION_DIR": str(tmp_path / "s")}
    assert read_settings(Settings.from_env(chosen), [FR]).session_dir == tmp_path / "s"


def test_the_registry_gives_a_bluesky_account_its_publisher(
    pds: BlueskyServer, tmp_path: Path
) -> None:
    from bot.content.model import Account
    from bot.platforms import publishers
    from bot.platforms import read_settings as platform_settings

    accounts = {
        FR: Account(lang="fr", platform="bluesky", handle=HANDLE),
        "francediplo_EN": Account(lang="en", platform="bluesky", handle="en.bsky.social"),
    }
    env = {
        "DIPLOBOT_FRANCEDIPLO_APP_PASSWORD": PASSWORD,
        "DIPLOBOT_BLUESKY_PDS_URL": pds.url,
        "DIPLOBOT_BLUESKY_SESSION_DIR": str(tmp_path / "s"),
    }
    channels = publishers(
        accounts,
        platform_settings(accounts, Settings.from_env(env)),
        dry_run=False,
        outbox_path=tmp_path / "outbox.jsonl",
    )
    assert channels.channel_of == {FR: "bluesky", "francediplo_EN": "outbox"}
    assert "DIPLOBOT_FRANCEDIPLO_EN_APP_PASSWORD" in channels.warnings[0]
    assert channels.publishers["bluesky"].whoami(FR) == HANDLE
    assert os.listdir(tmp_path / "s") == ["francediplo.session"]


# -- through the deliverer ------------------------------------------------------------------


def test_a_thread_whose_answer_is_lost_ends_posted_once_through_the_deliverer(
    pds: BlueskyServer, bsky: BlueskyPublisher, tmp_path: Path
) -> None:
    """A real ledger and deliverer: part 1 is stored, its answer lost; the deliverer's look-up
    reads its derived key (one getRecord, no timeline) and records it POSTED; parts 2 and 3
    follow, replying under it. The PDS holds each part once."""
    from bot.publish.deliver import Deliverer
    from bot.state import open_store, state_url
    from bot.state.ledger import NewDelivery, State

    ledger = open_store(state_url(tmp_path, None)).ledger
    ledger.ensure(
        [
            NewDelivery("cop31", FR, n, "bluesky", "fr", datetime.now(UTC), f"COP31 ({n}/3)")
            for n in (1, 2, 3)
        ]
    )
    pds.fail_next("drop_after_store", nsid=CREATE)
    deliverer = Deliverer(ledger, bsky, tmp_path, {FR: HANDLE})
    done = deliverer.deliver_chain(ledger.rows("cop31", channel="bluesky"))
    assert [r.state for r in done] == [State.POSTED] * 3
    posts = pds.posts(FR)
    assert [p["text"] for p in posts] == ["COP31 (1/3)", "COP31 (2/3)", "COP31 (3/3)"]
    assert [r.remote_id for r in done] == [p["uri"] for p in posts]
    assert [p["rkey"] for p in posts] == [tid_for(f"cop31#{n}@{FR}") for n in (1, 2, 3)]
    assert posts[2]["reply"] == {"root": posts[0]["uri"], "parent": posts[1]["uri"]}
    assert [p["langs"] for p in posts] == [["fr"]] * 3
    assert nsids(pds) == [
        "com.atproto.server.createSession",
        CREATE,  # part 1: stored, answer lost
        "com.atproto.repo.getRecord",  # the look-up at its key
        CREATE,
        CREATE,
    ]
