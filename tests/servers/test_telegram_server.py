"""The fake Bot API answers raw HTTP as Telegram does: its envelope, statuses and checks,
whatever the encoding of the parameters (query, form, JSON, multipart)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from servers.telegram import Chat, TelegramServer, token_for

TOKEN = token_for(7012345678, "CANARYtgE")
CHANNEL = Chat(-1001234567890, "francediplo_es", "Francia", admins={7012345678})


@pytest.fixture
def server() -> Iterator[TelegramServer]:
    with TelegramServer({TOKEN: (7012345678, "diplobot_es_bot")}, [CHANNEL]) as srv:
        yield srv
        assert not srv.errors


def _url(server: TelegramServer, method: str, token: str = TOKEN) -> str:
    return f"{server.url}bot{token}/{method}"


def test_tokens_and_methods_are_checked_like_telegram(server: TelegramServer) -> None:
    answer = requests.post(_url(server, "getMe", "12345:short"), timeout=5)
    assert (answer.status_code, answer.json()) == (
        404,
        {"ok": False, "error_code": 404, "description": "Not Found"},
    )
    answer = requests.post(_url(server, "getMe", token_for(7012345678, "other")), timeout=5)
    assert (answer.status_code, answer.json()["description"]) == (401, "Unauthorized")
    answer = requests.post(_url(server, "getUpdatez"), timeout=5)
    assert answer.status_code == 404
    answer = requests.get(_url(server, "getMe"), timeout=5)
    assert answer.json()["result"]["username"] == "diplobot_es_bot"


@pytest.mark.parametrize("encoding", ["query", "form", "json", "multipart"])
def test_every_encoding_of_the_parameters_is_read(server: TelegramServer, encoding: str) -> None:
    params = {"chat_id": "@francediplo_es", "text": "Hola ¿qué tal? 🌍"}
    url = _url(server, "sendMessage")
    if encoding == "query":
        answer = requests.post(url, params=params, timeout=5)
    elif encoding == "form":
        answer = requests.post(url, data=params, timeout=5)
    elif encoding == "json":
        answer = requests.post(url, json=params, timeout=5)
    else:
        answer = requests.post(url, files={k: (None, v) for k, v in params.items()}, timeout=5)
    body = answer.json()
    assert answer.status_code == 200 and body["ok"] is True
    assert body["result"]["text"] == "Hola ¿qué tal? 🌍"
    assert body["result"]["chat"] == {
        "id": CHANNEL.id,
        "title": "Francia",
        "type": "channel",
        "username": "francediplo_es",
    }


def test_refusals_carry_the_envelope_and_flood_control_its_wait(server: TelegramServer) -> None:
    url = _url(server, "sendMessage")
    answer = requests.post(url, data={"chat_id": "@nobody_here", "text": "x"}, timeout=5)
    assert answer.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: chat not found",
    }
    reply = json.dumps({"message_id": 999})
    answer = requests.post(
        url,
        data={"chat_id": "@francediplo_es", "text": "x", "reply_parameters": reply},
        timeout=5,
    )
    assert answer.json()["description"] == "Bad Request: message to be replied not found"
    server.fail_next("429", method="sendMessage")
    answer = requests.post(url, data={"chat_id": "@francediplo_es", "text": "x"}, timeout=5)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert answer.json()["parameters"] == {"retry_after": 7}
    assert server.stored(CHANNEL.id) == []


def test_a_media_group_needs_its_attachments(server: TelegramServer) -> None:
    media = json.dumps(
        [{"type": "photo", "media": "attach://a"}, {"type": "photo", "media": "attach://b"}]
    )
    answer = requests.post(
        _url(server, "sendMediaGroup"),
        files={
            "chat_id": (None, "@francediplo_es"),
            "media": (None, media),
            "a": ("a.png", b"\x89PNG\r\n\x1a\n" + b"0" * 30),
        },
        timeout=5,
    )
    assert (
        answer.status_code == 400 and "wrong remote file identifier" in answer.json()["description"]
    )
    assert server.stored(CHANNEL.id) == []
