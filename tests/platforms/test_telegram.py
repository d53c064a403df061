"""The Telegram publisher, through python-telegram-bot, against the fake Bot API in
``tests/servers/telegram.py``: what each send stores, how every refusal and fault maps into
the error tree, that nothing can be searched (UNKNOWN stays for a person), and that the bot
token never shows."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loguru import logger
from PIL import Image
from servers.telegram import Chat, TelegramServer, token_for

from bot.errors import (
    ConfigError,
    PublishAmbiguous,
    PublishAuthFailed,
    PublishError,
    PublishRateLimited,
    PublishRejected,
    PublishUnverifiable,
)
from bot.platforms.telegram import TelegramPublisher, read_settings
from bot.publish.base import MediaItem, Outgoing
from bot.settings import Secret, Settings

ES = "francediplo_ES"
TOKEN = token_for(7012345678, "CANARYtgA")
OTHER = token_for(7098765432, "CANARYtgB")  # a bot that is no admin of the channel
CHANNEL = Chat(-1001234567890, "francediplo_es", "Francia en español", admins={7012345678})


@pytest.fixture
def server() -> Iterator[TelegramServer]:
    bots = {TOKEN: (7012345678, "diplobot_es_bot"), OTHER: (7098765432, "stranger_bot")}
    with TelegramServer(bots, [CHANNEL]) as srv:
        yield srv
        assert not srv.errors


def _publisher(
    server: TelegramServer, token: str = TOKEN, timeout: float = 2.0
) -> TelegramPublisher:
    return TelegramPublisher(
        {ES: Secret(token)},
        {ES: "@francediplo_es"},
        {ES: "francediplo_es"},
        api_url=server.url.rstrip("/"),
        timeout=timeout,
    )


def _png(color: str = "red", size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def _item(text: str, **kw: object) -> Outgoing:
    return Outgoing(ES, "francediplo_es", text, key=f"cop31#1@{ES}", lang="es", **kw)  # type: ignore[arg-type]


def test_a_text_is_one_message_with_its_link(server: TelegramServer) -> None:
    receipt = _publisher(server).publish(_item("Apertura de la #COP31 en Belém 🌍"))
    [stored] = server.stored(CHANNEL.id)
    assert stored.text == "Apertura de la #COP31 en Belém 🌍"
    assert receipt.remote_id == str(stored.message_id) and receipt.root is None
    assert receipt.url == f"https://t.me/francediplo_es/{stored.message_id}"


def test_one_image_is_a_photo_with_the_text_as_caption(
    server: TelegramServer, tmp_path: Path
) -> None:
    image = tmp_path / "cop31.png"
    image.write_bytes(_png())
    receipt = _publisher(server).publish(_item("Belém", media=(MediaItem(image, "alt"),)))
    [stored] = server.stored(CHANNEL.id)
    assert stored.caption == "Belém" and stored.text is None
    assert stored.photos == (image.read_bytes(),)
    assert receipt.remote_id == str(stored.message_id)
    [call] = server.sends()
    assert call.path.endswith("/sendPhoto")


def test_several_images_are_one_album_captioned_on_the_first(
    server: TelegramServer, tmp_path: Path
) -> None:
    media = []
    for n, color in enumerate(("red", "green", "blue")):
        path = tmp_path / f"{n}.png"
        path.write_bytes(_png(color))
        media.append(MediaItem(path, None, path.read_bytes()))
    receipt = _publisher(server).publish(_item("Álbum", media=tuple(media)))
    stored = server.stored(CHANNEL.id)
    assert [s.caption for s in stored] == ["Álbum", None, None]
    assert len({s.media_group_id for s in stored}) == 1
    assert [s.photos[0] for s in stored] == [m.data for m in media]
    assert receipt.remote_id == str(stored[0].message_id)


def test_a_reply_names_the_previous_message_and_carries_the_root(server: TelegramServer) -> None:
    publisher = _publisher(server)
    first = publisher.publish(_item("1/2 Acuerdo"))
    second = publisher.publish(_item("2/2 Detalles", reply_to=first))
    assert second.root == first.remote_id
    assert [s.reply_to for s in server.stored(CHANNEL.id)] == [None, int(first.remote_id)]


@pytest.mark.parametrize(
    ("text", "images", "detail"),
    [
        ("x" * 4097, 0, "message is too long"),
        ("🌍" * 2049, 0, "message is too long"),  # 4,098 UTF-16 code units
        ("   ", 0, "message text is empty"),
        ("c" * 1025, 1, "message caption is too long"),
    ],
)
def test_what_telegram_refuses_is_rejected_with_its_reason(
    server: TelegramServer, tmp_path: Path, text: str, images: int, detail: str
) -> None:
    media = tuple(MediaItem(tmp_path / "i.png", None, _png()) for _ in range(images))
    with pytest.raises(PublishRejected, match=f"(?i){detail}") as raised:
        _publisher(server).publish(_item(text, media=media))
    assert raised.value.__cause__ is not None
    assert server.stored(CHANNEL.id) == []


def test_a_file_that_is_no_image_is_refused(server: TelegramServer, tmp_path: Path) -> None:
    media = (MediaItem(tmp_path / "a.png", None, b"not an image at all"),)
    with pytest.raises(PublishRejected, match=r"(?i)IMAGE_PROCESS_FAILED"):
        _publisher(server).publish(_item("Foto", media=media))


def test_flood_control_gives_the_time_to_retry(server: TelegramServer) -> None:
    server.fail_next("429", method="sendMessage")
    before = datetime.now(UTC)
    with pytest.raises(PublishRateLimited) as raised:
        _publisher(server).publish(_item("Hola"))
    expected = before + timedelta(seconds=server.retry_after)
    assert (
        expected - timedelta(seconds=1) <= raised.value.retry_at <= expected + timedelta(seconds=2)
    )


def test_a_wrong_token_and_a_bot_that_is_no_admin_are_auth_failures(server: TelegramServer) -> None:
    wrong = token_for(7012345678, "WRONGtok")
    with pytest.raises(PublishAuthFailed, match="bot token"):
        _publisher(server, wrong).publish(_item("Hola"))
    with pytest.raises(PublishAuthFailed, match="administrator"):
        _publisher(server, OTHER).publish(_item("Hola"))
    with pytest.raises(PublishAuthFailed, match="bot token"):
        _publisher(server, "not-a-token").publish(_item("Hola"))
    assert server.stored(CHANNEL.id) == []


@pytest.mark.parametrize("fault", ["500", "502", "malformed", "drop", "drop_after_store", "hang"])
def test_an_outcome_that_cannot_be_known_is_ambiguous(server: TelegramServer, fault: str) -> None:
    server.fail_next(fault, method="sendMessage")
    with pytest.raises(PublishAmbiguous, match="may"):
        _publisher(server, timeout=0.3).publish(_item("Hola"))
    stored = server.stored(CHANNEL.id)
    assert len(stored) == (1 if fault == "drop_after_store" else 0)


def test_nothing_sent_is_not_ambiguous(server: TelegramServer) -> None:
    """Telegram unreachable: the request never left, so it is retried, not a person's task."""
    publisher = _publisher(server)
    server.stop()
    with pytest.raises(PublishError, match="nothing was sent") as raised:
        publisher.publish(_item("Hola"))
    assert not isinstance(raised.value, PublishAmbiguous)


def test_find_cannot_search_and_says_where_to_look(server: TelegramServer) -> None:
    publisher = _publisher(server)
    publisher.publish(_item("Hola"))
    with pytest.raises(PublishUnverifiable, match=r"https://t\.me/francediplo_es"):
        publisher.find(_item("Hola"), datetime.now(UTC) - timedelta(minutes=1))
    assert publisher.recent(ES, datetime.now(UTC) - timedelta(minutes=1)) == []
    assert len(server.calls) == 1  # neither of them asked Telegram anything


def test_delete_removes_the_message_and_again_is_no_error(server: TelegramServer) -> None:
    publisher = _publisher(server)
    kept = publisher.publish(_item("Sigue"))
    gone = publisher.publish(_item("Retirado"))
    publisher.delete(ES, gone.remote_id)
    assert [str(s.message_id) for s in server.stored(CHANNEL.id)] == [kept.remote_id]
    publisher.delete(ES, gone.remote_id)


def test_whoami_is_the_channel_the_bot_posts_to(server: TelegramServer) -> None:
    assert _publisher(server).whoami(ES) == "francediplo_es"
    methods = [c.path.rsplit("/", 1)[-1] for c in server.calls]
    assert methods == ["getMe", "getChat"]
    with pytest.raises(PublishAuthFailed):
        _publisher(server, token_for(7012345678, "WRONGtok")).whoami(ES)
    with pytest.raises(ConfigError):
        _publisher(server).whoami("francediplo_AR")


def test_the_token_never_shows(server: TelegramServer, caplog: pytest.LogCaptureFixture) -> None:
    """Not in repr, messages, causes' messages or logs (httpx logs every URL, token inside)."""
    seen: list[str] = []
    sink = logger.add(seen.append, level="DEBUG", diagnose=False)  # as bot.log sets it up
    publisher = _publisher(server, timeout=0.3)
    try:
        with caplog.at_level(logging.DEBUG):
            publisher.publish(_item("Hola"))
            for fault in ("500", "502", "drop", "429", "401", "400", "malformed"):
                server.fail_next(fault)
                with pytest.raises(PublishError) as raised:
                    publisher.publish(_item("Hola"))
                assert TOKEN not in str(raised.value)
            server.stop()
            with pytest.raises(PublishError) as raised:
                publisher.publish(_item("Hola"))
            assert TOKEN not in str(raised.value)
    finally:
        logger.remove(sink)
    secret = TOKEN.split(":")[1]
    assert secret not in repr(publisher)
    assert secret not in caplog.text
    assert [line for line in seen if secret in line] == []


def test_settings_read_each_accounts_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {
        "DIPLOBOT_FRANCEDIPLO_ES_BOT_TOKEN_FILE": str(token_file),
        "DIPLOBOT_TELEGRAM_API_URL": "http://127.0.0.1:9/",
        "DIPLOBOT_TELEGRAM_TIMEOUT": "5",
    }
    found = read_settings(Settings(platform_env=env), [ES, "francediplo_PT"])
    assert found.tokens[ES].reveal() == TOKEN
    assert found.missing == {"francediplo_PT": "DIPLOBOT_FRANCEDIPLO_PT_BOT_TOKEN"}
    assert (found.api_url, found.timeout) == ("http://127.0.0.1:9", 5.0)
    assert TOKEN not in repr(found)
    with pytest.raises(ConfigError, match="DIPLOBOT_TELEGRAM_TIMEOUT"):
        read_settings(Settings(platform_env={"DIPLOBOT_TELEGRAM_TIMEOUT": "soon"}), [ES])


def test_check_says_what_the_bot_may_not_do(server: TelegramServer) -> None:
    """accounts check's extra: an administrator allowed to post and delete, or what lacks."""
    assert _publisher(server).check(ES) == []
    [not_admin] = _publisher(server, OTHER).check(ES)
    assert "not an administrator of https://t.me/francediplo_es" in not_admin
    CHANNEL.withheld[7012345678] = {"post", "delete"}
    try:
        warnings = _publisher(server).check(ES)
        assert [w.split(":")[0] for w in warnings] == [
            "the bot may not post in https",
            "the bot may not delete messages in https",
        ]
        with pytest.raises(PublishRejected, match=r"(?i)need administrator rights"):
            _publisher(server).publish(_item("Hola"))
    finally:
        CHANNEL.withheld.clear()


def test_a_delete_telegram_refuses_is_an_error(server: TelegramServer) -> None:
    publisher = _publisher(server)
    sent = publisher.publish(_item("Hola"))
    CHANNEL.withheld[7012345678] = {"delete"}
    try:
        with pytest.raises(PublishError, match="did not delete"):
            publisher.delete(ES, sent.remote_id)
    finally:
        CHANNEL.withheld.clear()
    assert len(server.stored(CHANNEL.id)) == 1
