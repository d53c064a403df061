"""The Facebook Pages publisher (``bot/platforms/facebook.py``) against the fake Graph API
(``tests/servers/facebook.py``), through ``requests`` as in production: what is sent, how each
Graph error is mapped, the token's expiry check, and that the page token never leaks.

The behaviour every publisher shares is in ``test_publisher_contract.py`` (channel
``facebook``); this file holds what is Facebook's own.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from loguru import logger
from PIL import Image
from servers.facebook import FacebookPage, FacebookServer

from bot.content.model import Account
from bot.errors import (
    ConfigError,
    PublishAmbiguous,
    PublishAuthFailed,
    PublishDuplicate,
    PublishError,
    PublishRateLimited,
    PublishRejected,
)
from bot.platforms import PLATFORMS
from bot.platforms.facebook import (
    DEFAULT_API_URL,
    EXPIRY_WARNING,
    RATE_LIMIT_FALLBACK,
    FacebookPublisher,
    publisher,
    read_settings,
)
from bot.publish.base import MediaItem, Outgoing, Receipt
from bot.settings import Secret, Settings

FR = "francediplo_fb"
PAGE_ID = "1000000000001"
TOKEN = "EAAB-page-token-CANARY-0f1e2d"
OTHER_TOKEN = "EAAB-other-page-CANARY-3c4b"


def _png(color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def fb() -> Iterator[FacebookServer]:
    pages = {
        FR: FacebookPage(TOKEN, PAGE_ID, "FranceDiplomatie", "France Diplomatie"),
        "other": FacebookPage(OTHER_TOKEN, "2000000000002", None, "Another page"),
    }
    with FacebookServer(pages=pages) as server:
        yield server
        assert not server.errors  # the fake itself never failed


def _publisher(
    fb: FacebookServer, *, token: str = TOKEN, page: str = PAGE_ID, timeout: float = 2.0
) -> FacebookPublisher:
    return FacebookPublisher(
        {FR: Secret(token)},
        {FR: "FranceDiplomatie"},
        {FR: page},
        api_url=fb.url,
        timeout=timeout,
    )


def _account() -> Account:
    return Account(lang="fr", platform="facebook", handle="FranceDiplomatie", page=PAGE_ID)


def _item(text: str, *media: MediaItem) -> Outgoing:
    return Outgoing(FR, "FranceDiplomatie", text, media=media, key=f"p1#0@{FR}", lang="fr")


def _since() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=1)


# -- settings ---------------------------------------------------------------------------------


def test_settings_read_each_accounts_page_token_and_say_what_is_missing(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(f"{TOKEN}\n")
    env = {
        "DIPLOBOT_FRANCEDIPLO_FB_ACCESS_TOKEN_FILE": str(secret),
        "DIPLOBOT_FACEBOOK_API_URL": "https://proxy.example/v21.0",
        "DIPLOBOT_FACEBOOK_TIMEOUT": "7.5",
    }
    found = read_settings(Settings.from_env(env), [FR, "ambafrance_ar"])
    assert found.tokens[FR].reveal() == TOKEN
    assert found.missing == {"ambafrance_ar": "DIPLOBOT_AMBAFRANCE_AR_ACCESS_TOKEN"}
    assert (found.api_url, found.timeout) == ("https://proxy.example/v21.0", 7.5)
    assert TOKEN not in repr(found)

    default = read_settings(Settings.from_env({}), [FR])
    assert (default.api_url, default.timeout) == (DEFAULT_API_URL, 20.0)
    assert default.missing == {FR: "DIPLOBOT_FRANCEDIPLO_FB_ACCESS_TOKEN"}


def test_a_bad_timeout_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="DIPLOBOT_FACEBOOK_TIMEOUT"):
        read_settings(Settings.from_env({"DIPLOBOT_FACEBOOK_TIMEOUT": "soon"}), [FR])


def test_the_registry_builds_the_publisher_only_for_accounts_with_a_token(
    fb: FacebookServer,
) -> None:
    """Through the registry's factory, as the wiring does: no token, no publisher."""
    account = _account()
    facebook = PLATFORMS["facebook"]
    env = {"DIPLOBOT_FACEBOOK_API_URL": fb.url}
    assert (
        facebook.publisher(facebook.settings(Settings.from_env(env), [FR]), {FR: account}) is None
    )
    env["DIPLOBOT_FRANCEDIPLO_FB_ACCESS_TOKEN"] = TOKEN
    made = facebook.publisher(facebook.settings(Settings.from_env(env), [FR]), {FR: account})
    assert isinstance(made, FacebookPublisher) and made.name == "facebook"
    assert made.whoami(FR) == "FranceDiplomatie"
    assert publisher(read_settings(Settings.from_env({}), [FR]), {FR: account}) is None


# -- publishing -------------------------------------------------------------------------------


def test_a_text_goes_to_the_page_feed_with_the_token_in_the_header_only(
    fb: FacebookServer,
) -> None:
    receipt = _publisher(fb).publish(_item("Ouverture de la #COP31 à Belém 🇧🇷 https://diplo.fr"))
    [post] = fb.stored(FR)
    assert post.text == "Ouverture de la #COP31 à Belém 🇧🇷 https://diplo.fr"
    assert receipt.remote_id == post.id and post.id.startswith(f"{PAGE_ID}_")
    assert receipt.url == f"https://www.facebook.com/{post.id}"
    creates = [r for r in fb.requests if r.method == "POST"]
    assert [r.path for r in creates] == [f"/{PAGE_ID}/feed"]
    for call in fb.calls:
        assert call.headers["Authorization"] == f"Bearer {TOKEN}"
        assert "access_token" not in call.params  # never in a URL or a body


def test_a_netrc_entry_for_the_host_does_not_replace_the_page_token(
    fb: FacebookServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests, trusting the environment, would put ~/.netrc's credentials for the host in
    the Authorization header, over the page token."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    _publisher(fb).publish(_item("Bonjour"))
    assert [p.text for p in fb.stored(FR)] == ["Bonjour"]


def test_one_image_is_a_photo_post_with_its_caption_and_alt_text(fb: FacebookServer) -> None:
    image = _png()
    receipt = _publisher(fb).publish(
        _item("مرحبا بكم في السفارة", MediaItem(Path("/c/a.png"), "Le ministre à Belém", image))
    )
    [post] = fb.stored(FR)
    assert (post.id, post.text, post.alts) == (
        receipt.remote_id,
        "مرحبا بكم في السفارة",
        ("Le ministre à Belém",),
    )
    [upload] = [c for c in fb.calls if c.path.endswith("/photos")]
    assert upload.params["published"] == "true"
    assert upload.headers["Content-Type"].startswith("multipart/form-data")
    photo_id = json.loads(
        requests.get(
            f"{fb.url}/{post.id}",
            params={"fields": "attachments{target}"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        ).text
    )["attachments"]["data"][0]["target"]["id"]
    assert fb.photo(photo_id).data == image


def test_several_images_are_uploaded_unpublished_then_attached_to_one_post(
    fb: FacebookServer,
) -> None:
    images = [
        MediaItem(Path(f"/c/{n}.png"), f"alt {n}", _png(color))
        for n, color in enumerate(("red", "green", "blue"))
    ]
    since = _since()
    pub = _publisher(fb)
    receipt = pub.publish(_item("Trois images", *images))
    [post] = fb.stored(FR)
    assert post.alts == ("alt 0", "alt 1", "alt 2")
    uploads = [c for c in fb.calls if c.path.endswith("/photos")]
    assert [c.params["published"] for c in uploads] == ["false"] * 3
    [feed] = [c for c in fb.calls if c.path.endswith("/feed")]
    assert sorted(k for k in feed.params if k.startswith("attached_media")) == [
        f"attached_media[{n}]" for n in range(3)
    ]
    assert pub.find(_item("Trois images", *images), since) == receipt
    assert pub.find(_item("Trois images", *images[:2]), since) is None  # not the same post
    assert [p.media for p in pub.recent(FR, since)] == [3]


def test_a_thread_part_is_the_pages_comment_with_at_most_one_image(fb: FacebookServer) -> None:
    pub = _publisher(fb)
    since = _since()
    first = pub.publish(_item("1/2 Accord"))
    image = MediaItem(Path("/c/a.png"), "carte", _png())
    second = pub.publish(
        Outgoing(FR, "FranceDiplomatie", "2/2 La carte", reply_to=first, media=(image,))
    )
    assert [(p.text, p.reply_to, p.alts) for p in fb.stored(FR)] == [
        ("1/2 Accord", None, ()),
        ("2/2 La carte", first.remote_id, ("carte",)),
    ]
    found = pub.find(
        Outgoing(FR, "FranceDiplomatie", "2/2 La carte", reply_to=first, media=(image,)), since
    )
    assert found == second and second.root == first.remote_id
    with pytest.raises(PublishRejected, match="one image"):
        pub.publish(Outgoing(FR, "FranceDiplomatie", "3/3", reply_to=second, media=(image, image)))


def test_a_long_thread_is_found_part_by_part_although_facebook_flattens_replies(
    fb: FacebookServer,
) -> None:
    """Facebook nests comments one level deep: part 4, a comment on part 3 (a reply), is
    stored under part 2. Each part dropped after being stored is still found (POSTED once),
    even when the thread's post is older than the attempt."""
    pub = _publisher(fb)
    old = fb.add_post(FR, "1/5 Le sommet", created=time.time() - 600)  # before ``since``
    parts = [Receipt(old, None)]
    parts.append(pub.publish(Outgoing(FR, "FranceDiplomatie", "2/5", reply_to=parts[0])))
    since = datetime.now(UTC)  # to the microsecond: Facebook's times are to the second
    for n in (3, 4, 5):
        item = Outgoing(FR, "FranceDiplomatie", f"{n}/5", reply_to=parts[-1])
        fb.fail_next("drop_after_store", method="POST")
        with pytest.raises(PublishAmbiguous):
            pub.publish(item)
        found = pub.find(item, since)
        assert found is not None and found.root == parts[0].remote_id
        assert pub.find(Outgoing(FR, "FranceDiplomatie", f"{n}/5", reply_to=parts[0]), since) is (
            None
        )
        parts.append(found)
    stored = {p.text: p.reply_to for p in fb.stored(FR)}
    assert stored == {
        "1/5 Le sommet": None,
        "2/5": parts[0].remote_id,
        "3/5": parts[1].remote_id,
        "4/5": parts[1].remote_id,  # flattened: under part 2, not part 3
        "5/5": parts[1].remote_id,
    }


def test_a_part_whose_thread_was_deleted_is_not_found(fb: FacebookServer) -> None:
    pub = _publisher(fb)
    first = pub.publish(_item("1/2"))
    pub.delete(FR, first.remote_id)
    assert pub.find(Outgoing(FR, "FranceDiplomatie", "2/2", reply_to=first), _since()) is None


def test_someone_elses_comment_with_the_same_text_is_not_ours(fb: FacebookServer) -> None:
    pub = _publisher(fb)
    since = _since()
    first = pub.publish(_item("Merci à tous"))
    fb.add_comment(FR, first.remote_id, "Merci", author="100000000000777")
    assert pub.find(Outgoing(FR, "FranceDiplomatie", "Merci", reply_to=first), since) is None
    assert [p.text for p in pub.recent(FR, since)] == ["Merci à tous"]


def test_a_token_of_another_page_sends_nothing(fb: FacebookServer) -> None:
    """accounts.yaml names the page; a token that acts as another page is refused before
    anything is sent (it would fail, or post on the wrong page)."""
    pub = _publisher(fb, token=OTHER_TOKEN)
    with pytest.raises(PublishAuthFailed, match="not to page 1000000000001") as raised:
        pub.publish(_item("Bonjour"))
    assert "DIPLOBOT_FRANCEDIPLO_FB_ACCESS_TOKEN" in str(raised.value)
    assert fb.stored(FR) == [] and fb.stored("other") == []
    assert OTHER_TOKEN not in str(raised.value)


def test_the_page_defaults_to_the_tokens_own(fb: FacebookServer) -> None:
    pub = FacebookPublisher({FR: Secret(TOKEN)}, {FR: "FranceDiplomatie"}, {}, api_url=fb.url)
    receipt = pub.publish(_item("Sans page"))
    assert receipt.remote_id.startswith(f"{PAGE_ID}_")


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["4", "17", "32", "341", "613", "80001"])
def test_every_rate_limit_code_carries_the_time_to_regain_access(
    fb: FacebookServer, code: str
) -> None:
    pub = _publisher(fb)
    pub.whoami(FR)
    fb.fail_next(code, method="POST", regain=42)
    before = datetime.now(UTC)
    with pytest.raises(PublishRateLimited, match=f"#{code}") as raised:
        pub.publish(_item("Limité"))
    expected = before + timedelta(minutes=42)
    assert abs((raised.value.retry_at - expected).total_seconds()) < 5
    assert fb.stored(FR) == []


def test_a_rate_limit_without_an_estimate_waits_the_platform_window(fb: FacebookServer) -> None:
    pub = _publisher(fb)
    fb.fail_next("4", method="POST", regain=0)
    before = datetime.now(UTC)
    with pytest.raises(PublishRateLimited) as raised:
        pub.publish(_item("Limité"))
    assert raised.value.retry_at >= before + RATE_LIMIT_FALLBACK - timedelta(seconds=1)


def test_a_duplicate_of_the_last_post_is_refused_as_facebook_does(fb: FacebookServer) -> None:
    pub = _publisher(fb)
    pub.publish(_item("Bonjour"))
    with pytest.raises(PublishDuplicate, match="fbtrace_id"):
        pub.publish(_item("Bonjour"))
    pub.publish(_item("Autre chose"))
    pub.publish(_item("Bonjour"))  # not the last one any more: Facebook takes it
    assert [p.text for p in fb.stored(FR)] == ["Bonjour", "Autre chose", "Bonjour"]


def test_an_expired_token_is_an_auth_failure_that_says_why_and_what_to_set(
    fb: FacebookServer,
) -> None:
    pub = _publisher(fb)
    fb.expire(FR)
    with pytest.raises(PublishAuthFailed) as raised:
        pub.whoami(FR)
    message = str(raised.value)
    assert "#190" in message and "the token expired" in message
    assert "DIPLOBOT_FRANCEDIPLO_FB_ACCESS_TOKEN" in message and TOKEN not in message
    assert raised.value.__cause__ is not None


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("190", PublishAuthFailed),
        ("200", PublishAuthFailed),
        ("100", PublishRejected),
        ("500", PublishAmbiguous),
        ("503", PublishAmbiguous),
        ("malformed", PublishAmbiguous),
        ("drop_after_store", PublishAmbiguous),
    ],
)
def test_each_graph_answer_to_a_create_maps_into_the_error_tree(
    fb: FacebookServer, fault: str, error: type[PublishError]
) -> None:
    pub = _publisher(fb)
    pub.whoami(FR)
    fb.fail_next(fault, method="POST")
    with pytest.raises(PublishError) as raised:
        pub.publish(_item("Une annonce"))
    assert type(raised.value) is error
    stored = [p.text for p in fb.stored(FR)]
    assert stored == (["Une annonce"] if fault == "drop_after_store" else [])


@pytest.mark.parametrize("fault", ["500", "503", "drop", "malformed"])
def test_a_failed_read_is_an_error_never_an_empty_page(fb: FacebookServer, fault: str) -> None:
    """A read that fails must not look like "not there" (it would send the post again)."""
    pub = _publisher(fb)
    pub.publish(_item("Déjà publié"))
    fb.fail_next(fault, method="GET")
    with pytest.raises(PublishError) as raised:
        pub.find(_item("Déjà publié"), _since())
    assert type(raised.value) is PublishError


def test_a_hanging_graph_api_is_ambiguous_within_the_timeout(fb: FacebookServer) -> None:
    pub = _publisher(fb, timeout=0.3)
    pub.whoami(FR)
    fb.fail_next("hang", method="POST")
    started = time.monotonic()
    with pytest.raises(PublishAmbiguous):
        pub.publish(_item("Lent"))
    assert time.monotonic() - started < 3


def test_an_answer_trickling_in_is_cut_off_at_the_deadline(fb: FacebookServer) -> None:
    """One byte every 0.1 s never trips the 0.3 s read timeout; the 0.9 s deadline ends it:
    ambiguous, and the post Facebook stored is found."""
    pub = _publisher(fb, timeout=0.3)
    pub.whoami(FR)
    since = _since()
    fb.fail_next("trickle", method="POST", seconds=0.1)
    started = time.monotonic()
    with pytest.raises(PublishAmbiguous, match=r"within 0\.9 s"):
        pub.publish(_item("Au compte-gouttes"))
    assert time.monotonic() - started < 2
    [post] = fb.stored(FR)
    assert pub.find(_item("Au compte-gouttes"), since) is not None
    assert post.text == "Au compte-gouttes"


def test_an_unreachable_graph_api_is_no_ambiguity_and_never_quotes_the_token() -> None:
    """Nothing was sent: not ambiguous. requests quotes the URL in its exception, and
    debug_token's URL carries the token: it is scrubbed from the cause too."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pub = FacebookPublisher(
        {FR: Secret(TOKEN)}, {FR: "x"}, {FR: PAGE_ID}, api_url=f"http://127.0.0.1:{port}/v21.0"
    )
    for call in (lambda: pub.publish(_item("Bonjour")), lambda: pub.token_info(FR)):
        with pytest.raises(PublishError) as raised:
            call()
        assert type(raised.value) is PublishError
        seen: list[BaseException] = [raised.value]
        for error in seen:  # the whole chain: causes and contexts
            assert TOKEN not in str(error) and TOKEN not in repr(error)
            seen += [e for e in (error.__cause__, error.__context__) if e is not None]
        assert len(seen) >= 2  # the cause is there, scrubbed


def test_the_token_never_appears_in_logs_or_repr(fb: FacebookServer) -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG")
    try:
        pub = _publisher(fb)
        assert TOKEN not in repr(pub)
        fb.expire(FR)
        with pytest.raises(PublishAuthFailed):
            pub.publish(_item("Bonjour"))
    finally:
        logger.remove(sink)
    assert all(TOKEN not in line for line in lines)


def test_a_usage_near_its_limit_is_logged(fb: FacebookServer) -> None:
    records: list[dict[str, object]] = []
    sink = logger.add(lambda m: records.append(m.record), level="WARNING")
    try:
        pub = _publisher(fb)
        pub.publish(_item("Sous la limite"))
        assert records == []
        fb.fail_next("32", method="POST", regain=7)
        with pytest.raises(PublishRateLimited):
            pub.publish(_item("Bonjour"))
    finally:
        logger.remove(sink)
    [record] = records
    assert record["message"] == "facebook.usage_high"
    assert record["extra"] == {"platform": "facebook", "usage_percent": 100, "regain_minutes": 7}


def test_a_post_dropped_after_facebook_stored_it_ends_posted_once_through_the_ledger(
    fb: FacebookServer, tmp_path: Path
) -> None:
    """The real deliverer on a real SQLite ledger: the answer is lost after Facebook stored
    part 1 and part 2, the look-up finds each, and nothing is sent twice."""
    from bot.publish.deliver import Deliverer
    from bot.state import open_store, state_url
    from bot.state.ledger import NewDelivery, State

    ledger = open_store(state_url(tmp_path, None)).ledger
    now = datetime.now(UTC)
    ledger.ensure(
        [
            NewDelivery("cop31", FR, n, "facebook", "fr", now, f"COP31 ({n}/2) à Belém")
            for n in (1, 2)
        ]
    )
    deliverer = Deliverer(ledger, _publisher(fb), tmp_path, {FR: "FranceDiplomatie"})
    for _ in range(2):
        fb.fail_next("drop_after_store", method="POST")
        deliverer.deliver_chain(ledger.rows("cop31", channel="facebook"), look_now=True)
    rows = ledger.rows("cop31", channel="facebook")
    assert [r.state for r in rows] == [State.POSTED, State.POSTED]
    stored = fb.stored(FR)
    assert [(p.id, p.text) for p in stored] == [
        (rows[0].remote_id, "COP31 (1/2) à Belém"),
        (rows[1].remote_id, "COP31 (2/2) à Belém"),
    ]
    assert stored[1].reply_to == rows[0].remote_id
    assert len([r for r in fb.requests if r.method == "POST"]) == 2


def test_an_app_that_requires_the_secret_proof_gets_it(tmp_path: Path) -> None:
    """With Require App Secret, a call without appsecret_proof is refused: an auth failure
    that names the variable to set; with DIPLOBOT_FACEBOOK_APP_SECRET every call carries it."""
    pages = {FR: FacebookPage(TOKEN, PAGE_ID, "FranceDiplomatie")}
    with FacebookServer(pages=pages, app_secret="s3cret-CANARY", require_proof=True) as server:
        without = _publisher(server)
        with pytest.raises(PublishAuthFailed, match="DIPLOBOT_FACEBOOK_APP_SECRET"):
            without.publish(_item("Bonjour"))
        env = {
            "DIPLOBOT_FACEBOOK_API_URL": server.url,
            "DIPLOBOT_FRANCEDIPLO_FB_ACCESS_TOKEN": TOKEN,
            "DIPLOBOT_FACEBOOK_APP_SECRET": "wrong",
        }
        wrong = publisher(read_settings(Settings.from_env(env), [FR]), {FR: _account()})
        assert wrong is not None
        with pytest.raises(PublishAuthFailed, match="Invalid appsecret_proof"):
            wrong.whoami(FR)
        env["DIPLOBOT_FACEBOOK_APP_SECRET"] = "s3cret-CANARY"
        settings = read_settings(Settings.from_env(env), [FR])
        assert "s3cret-CANARY" not in repr(settings)
        right = publisher(settings, {FR: _account()})
        assert right is not None and "s3cret-CANARY" not in repr(right)
        right.publish(_item("Bonjour"))
        right.check(FR)
        assert [p.text for p in server.stored(FR)] == ["Bonjour"]
        assert not server.errors


# -- delete, whoami, token expiry -------------------------------------------------------------


def test_delete_removes_a_post_and_its_comments_and_tolerates_a_second_time(
    fb: FacebookServer,
) -> None:
    pub = _publisher(fb)
    first = pub.publish(_item("1/2"))
    pub.publish(Outgoing(FR, "FranceDiplomatie", "2/2", reply_to=first))
    pub.delete(FR, first.remote_id)
    assert fb.stored(FR) == []
    pub.delete(FR, first.remote_id)
    with pytest.raises(PublishError, match="not a Facebook post id"):
        pub.delete(FR, "../me")


def test_whoami_is_the_pages_user_name_else_its_id(fb: FacebookServer) -> None:
    assert _publisher(fb).whoami(FR) == "FranceDiplomatie"
    other = FacebookPublisher({FR: Secret(OTHER_TOKEN)}, {}, {}, api_url=fb.url)
    assert other.whoami(FR) == "2000000000002"
    with pytest.raises(ConfigError, match="DIPLOBOT_NOBODY_ACCESS_TOKEN"):
        other.whoami("nobody")


def test_a_page_token_that_never_expires_gives_no_warning(fb: FacebookServer) -> None:
    pub = _publisher(fb)
    info = pub.token_info(FR)
    assert (info.valid, info.type, info.page, info.expires_at) == (True, "PAGE", PAGE_ID, None)
    assert pub.check(FR) == []


def test_a_token_ending_soon_is_warned_of_well_before(fb: FacebookServer) -> None:
    page = fb.pages[FR]
    soon = datetime.now(UTC) + timedelta(days=5)
    page.expires_at = int(soon.timestamp())
    page.data_access_expires_at = int((datetime.now(UTC) + timedelta(days=60)).timestamp())
    [warning] = _publisher(fb).check(FR)
    assert "page token expires" in warning and f"{soon:%Y-%m-%d}" in warning
    assert "DIPLOBOT_FRANCEDIPLO_FB_ACCESS_TOKEN" in warning
    page.expires_at = int((datetime.now(UTC) + EXPIRY_WARNING + timedelta(days=1)).timestamp())
    page.data_access_expires_at = int((datetime.now(UTC) + timedelta(days=2)).timestamp())
    [warning] = _publisher(fb).check(FR)
    assert "data access expires" in warning


def test_accounts_check_warns_of_the_token_well_before_it_dies(
    fb: FacebookServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI, on the example repository with a Facebook account: ok for the page, and the
    warning that its token's data access ends in 3 days."""
    from bot.cli import main

    root = Path(__file__).resolve().parents[2]
    for folder in ("content", "schedules"):
        shutil.copytree(root / folder, tmp_path / folder)
    with (tmp_path / "schedules/accounts.yaml").open("a", encoding="utf-8") as accounts:
        accounts.write(
            f"  {FR}: {{lang: fr, platform: facebook, handle: FranceDiplomatie, "
            f'page: "{PAGE_ID}"}}\n'
        )
    ends = datetime.now(UTC) + timedelta(days=3)
    fb.pages[FR].data_access_expires_at = int(ends.timestamp())
    monkeypatch.setenv("DIPLOBOT_FACEBOOK_API_URL", fb.url)
    monkeypatch.setenv("DIPLOBOT_FRANCEDIPLO_FB_ACCESS_TOKEN", TOKEN)
    main(["accounts", "check", "--root", str(tmp_path)])
    out = capsys.readouterr()
    ours = [line for line in out.out.splitlines() if line.startswith(FR)]
    assert ours[0] == f"{FR} (Facebook): ok (@FranceDiplomatie)"
    assert "data access expires" in ours[1] and "(in 3 day(s))" in ours[1]
    assert TOKEN not in out.out + out.err


def test_a_user_token_or_a_missing_permission_is_warned_of(fb: FacebookServer) -> None:
    page = fb.pages[FR]
    page.type = "USER"
    page.scopes = ("pages_show_list", "pages_read_engagement")
    warnings = _publisher(fb).check(FR)
    assert any("not a PAGE token" in w for w in warnings)
    assert any("pages_manage_posts" in w for w in warnings)
    assert any("pages_manage_engagement" in w for w in warnings)
    with pytest.raises(PublishAuthFailed, match="#200"):  # and Facebook refuses the post
        _publisher(fb).publish(_item("Bonjour"))


def test_an_invalid_token_says_so_in_the_check(fb: FacebookServer) -> None:
    """debug_token still answers for an expired token (with the app's own token it would;
    here the token inspects itself, so Facebook refuses the call: an auth failure)."""
    pub = _publisher(fb)
    fb.expire(FR)
    with pytest.raises(PublishAuthFailed):
        pub.check(FR)


# -- the fake is as strict as the Graph API ---------------------------------------------------


def test_the_fake_refuses_what_the_graph_api_refuses(fb: FacebookServer) -> None:
    def post(path: str, token: str | None = TOKEN, **data: str) -> int:
        """The Graph error code of the answer."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = requests.post(f"{fb.url}/{path}", data=data, headers=headers, timeout=5)
        code = answer.json()["error"]["code"]
        assert isinstance(code, int) and answer.status_code in (400, 403)
        return code

    assert post(f"{PAGE_ID}/feed", token=None) == 2500
    assert post(f"{PAGE_ID}/feed", token="nope", message="x") == 190
    assert post(f"{PAGE_ID}/feed") == 100
    assert post("2000000000002/feed", message="x") == 200
    media = json.dumps({"media_fbid": "123"})
    refused = post(f"{PAGE_ID}/feed", message="x", **{"attached_media[0]": media})
    assert refused == 100
    fields = requests.get(
        f"{fb.url}/{PAGE_ID}/published_posts",
        params={"fields": "id,likes_of_the_minister"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    ).json()
    assert "nonexisting field (likes_of_the_minister)" in fields["error"]["message"]
    unversioned = requests.get(
        fb.url.rsplit("/", 1)[0] + "/me", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert unversioned.status_code == 400
    assert fb.stored(FR) == []
