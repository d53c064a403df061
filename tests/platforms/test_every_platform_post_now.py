"""One ``post-now`` of one post reaches one account on each platform, through each platform's
own client library and its fake server (issue 11's acceptance): a text with a URL, a mention, a
hashtag, an emoji and Arabic script, and an image with its alt text. Every fake shows exactly
one post, with the language tag and the alt text where the platform stores them, and Bluesky's
facets point at the right UTF-8 bytes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from publish.conftest import ACCOUNTS, APP
from servers.bluesky import BlueskyServer
from servers.facebook import FacebookPage, FacebookServer
from servers.mastodon import MastodonServer
from servers.telegram import Chat, TelegramServer, token_for
from servers.x import XServer

from bot.cli import main
from bot.envname import env_name

ROOT = Path(__file__).resolve().parents[2]
X_ACCOUNT = "francediplo_AR"  # one of the fake X's accounts (publish/conftest.py)
MENTIONED = "un.bsky.social"
MENTIONED_DID = "did:plc:unitednations0000000000"
ALT = "وزير الخارجية في بيليم"
TEXT = (
    "افتتاح مؤتمر #COP31 في بيليم 🌍 مع @" + MENTIONED + " — التفاصيل: "
    "https://www.diplomatie.gouv.fr/ar/cop31"
)
POST_ID = "cop31-ar"
MASTODON_TOKEN = "masto-ar-CANARY-11aa"
BSKY_PASSWORD = "bsky-ar-CANARY-22bb"
FACEBOOK_TOKEN = "fb-ar-CANARY-33cc"
TELEGRAM_TOKEN = token_for(7000000001, "CANARYar")
TELEGRAM_CHAT = Chat(-1009876543210, "francediplo_ar", "France Diplomatie AR", admins={7000000001})
FACEBOOK_PAGE = FacebookPage(FACEBOOK_TOKEN, "1000000000042", "FranceDiplomatieAR", "France AR")


@dataclass
class Fakes:
    x: XServer
    mastodon: MastodonServer
    bluesky: BlueskyServer
    facebook: FacebookServer
    telegram: TelegramServer


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    token, secret, handle = ACCOUNTS[X_ACCOUNT]
    with (
        XServer(accounts={X_ACCOUNT: (token, secret, handle)}, consumer=APP) as x,
        MastodonServer(accounts={"masto_ar": (MASTODON_TOKEN, "diplomatie_ar")}) as mastodon,
        BlueskyServer(
            accounts={"bsky_ar": ("francediplo-ar.bsky.social", BSKY_PASSWORD)},
            others={MENTIONED: MENTIONED_DID},
        ) as bluesky,
        FacebookServer(pages={"fb_ar": FACEBOOK_PAGE}) as facebook,
        TelegramServer({TELEGRAM_TOKEN: (7000000001, "diplobot_ar_bot")}, [TELEGRAM_CHAT]) as tg,
    ):
        yield Fakes(x, mastodon, bluesky, facebook, tg)


def _repo(tmp_path: Path, fakes: Fakes) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "content", repo / "content")
    shutil.copytree(ROOT / "schedules", repo / "schedules")
    shutil.rmtree(repo / "content" / "posts")
    (repo / "content" / "posts").mkdir()
    (repo / "schedules" / "accounts.yaml").write_text(
        "timezone: Europe/Paris\n"
        "accounts:\n"
        f"  {X_ACCOUNT}: {{lang: ar, platform: x, handle: {X_ACCOUNT}}}\n"
        "  masto_ar: {lang: ar, platform: mastodon, handle: diplomatie_ar,"
        f" instance: '{fakes.mastodon.url}'}}\n"
        "  bsky_ar: {lang: ar, platform: bluesky, handle: francediplo-ar.bsky.social}\n"
        f"  fb_ar: {{lang: ar, platform: facebook, handle: FranceDiplomatieAR,"
        f" page: '{FACEBOOK_PAGE.id}'}}\n"
        "  tg_ar: {lang: ar, platform: telegram, handle: francediplo_ar}\n",
        encoding="utf-8",
    )
    image = ROOT / "content" / "media" / "drapeau.png"
    (repo / "content" / "posts" / f"{POST_ID}.yaml").write_text(
        "lang: ar\n"
        "publish_at: 2026-11-24 09:00\n"
        f"text: {json.dumps(TEXT, ensure_ascii=False)}\n"
        "media:\n"
        f"  - file: media/{image.name}\n"
        f"    alt: {json.dumps(ALT, ensure_ascii=False)}\n",
        encoding="utf-8",
    )
    return repo


def _env(fakes: Fakes, monkeypatch: pytest.MonkeyPatch, state: Path) -> None:
    token, secret, _handle = ACCOUNTS[X_ACCOUNT]
    env = {
        "DIPLOBOT_X_API_URL": fakes.x.url,
        "DIPLOBOT_X_API_KEY": APP[0],
        "DIPLOBOT_X_API_SECRET": APP[1],
        f"DIPLOBOT_{env_name(X_ACCOUNT)}_ACCESS_TOKEN": token,
        f"DIPLOBOT_{env_name(X_ACCOUNT)}_ACCESS_SECRET": secret,
        "DIPLOBOT_MASTO_AR_ACCESS_TOKEN": MASTODON_TOKEN,
        "DIPLOBOT_BLUESKY_PDS_URL": fakes.bluesky.url,
        "DIPLOBOT_BSKY_AR_APP_PASSWORD": BSKY_PASSWORD,
        "DIPLOBOT_BLUESKY_SESSION_DIR": str(state / "bluesky"),
        "DIPLOBOT_FACEBOOK_API_URL": fakes.facebook.url,
        "DIPLOBOT_FB_AR_ACCESS_TOKEN": FACEBOOK_TOKEN,
        "DIPLOBOT_TELEGRAM_API_URL": fakes.telegram.url.rstrip("/"),
        "DIPLOBOT_TG_AR_BOT_TOKEN": TELEGRAM_TOKEN,
        "DIPLOBOT_LOG_FORMAT": "text",
        "DIPLOBOT_LOG_LEVEL": "WARNING",
    }
    for timeout in ("X", "MASTODON", "BLUESKY", "FACEBOOK", "TELEGRAM"):
        env[f"DIPLOBOT_{timeout}_TIMEOUT"] = "3"
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_one_post_now_reaches_one_account_on_each_platform_once(
    tmp_path: Path,
    fakes: Fakes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = _repo(tmp_path, fakes)
    _env(fakes, monkeypatch, tmp_path / "state")
    assert main(["validate", "--root", str(repo)]) == 0, capsys.readouterr()
    assert main(["post-now", "--root", str(repo), POST_ID]) == 0, capsys.readouterr()

    # X: one post, the text as sent, the alt text on its image.
    (tweet,) = fakes.x.timeline(X_ACCOUNT)
    assert tweet["text"] == TEXT
    assert [m["alt_text"] for m in tweet["media"]] == [ALT]
    assert fakes.x.errors == []  # signed right and as X's OpenAPI spec says

    # Mastodon: one status, language ar, the alt text as the image's description.
    (status,) = fakes.mastodon.statuses("masto_ar")
    assert status["text"] == TEXT and status["language"] == "ar"
    assert [m["description"] for m in status["media"]] == [ALT]

    # Bluesky: one post, langs [ar], the alt text, and facets on the right bytes.
    (post,) = fakes.bluesky.posts("bsky_ar")
    assert post["text"] == TEXT and post["langs"] == ["ar"]
    assert [i["alt"] for i in post["images"]] == [ALT]
    data = TEXT.encode("utf-8")
    features = {}
    for facet in post["facets"]:
        start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
        (feature,) = facet["features"]
        features[data[start:end].decode("utf-8")] = feature
    assert features["#COP31"]["tag"] == "COP31"
    assert features["@" + MENTIONED]["did"] == MENTIONED_DID
    assert features["https://www.diplomatie.gouv.fr/ar/cop31"]["uri"] == (
        "https://www.diplomatie.gouv.fr/ar/cop31"
    )

    # Facebook: one photo post, the text as its caption, the alt text on the photo.
    (page_post,) = fakes.facebook.stored("fb_ar")
    assert page_post.text == TEXT and page_post.alts == (ALT,)

    # Telegram: one photo message with the text as its caption (the Bot API has no alt text
    # and no language tag).
    (message,) = [m for m in fakes.telegram.stored(TELEGRAM_CHAT.id) if not m.deleted]
    assert message.caption == TEXT and len(message.photos) == 1

    # Running it again publishes nothing anywhere.
    assert main(["post-now", "--root", str(repo), POST_ID]) == 1
    assert len(fakes.x.timeline(X_ACCOUNT)) == 1
    assert len(fakes.mastodon.statuses("masto_ar")) == 1
    assert len(fakes.bluesky.posts("bsky_ar")) == 1
    assert len(fakes.facebook.stored("fb_ar")) == 1
    assert len([m for m in fakes.telegram.stored(TELEGRAM_CHAT.id) if not m.deleted]) == 1
