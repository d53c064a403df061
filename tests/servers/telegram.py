"""A fake Telegram Bot API on 127.0.0.1, as rude as the real one.

Point python-telegram-bot at it with ``Bot(token, base_url=srv.url + "bot")`` (the library
appends the token): every request is ``POST /bot<token>/<method>``, its parameters in the
query string, a form (``application/x-www-form-urlencoded``, each value JSON-encoded when it
is not a string: what the library sends), JSON, or ``multipart/form-data`` with the files
(``attach://<name>`` in a media group). Every answer is the Bot API's envelope::

    {"ok": true, "result": …}
    {"ok": false, "error_code": 400, "description": "Bad Request: message is too long"}
    {"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7",
     "parameters": {"retry_after": 7}}            (and a ``Retry-After`` header)

What it checks, as Telegram does:

- the token: not shaped ``<digits>:<35 characters>`` → 404 ``Not Found``; shaped but not a
  bot's → 401 ``Unauthorized``; an unknown method → 404 ``Not Found``;
- the chat: ``@name`` or numeric id, else 400 ``Bad Request: chat not found``; a bot that is
  not an administrator of the channel → 403 ``Forbidden: bot is not a member of the channel
  chat``;
- ``sendMessage``: the text, stripped, not empty (``message text is empty``) and at most 4,096
  UTF-16 code units (``message is too long``);
- ``sendPhoto``/``sendMediaGroup``: each photo an uploaded JPEG, PNG or WebP (else
  ``IMAGE_PROCESS_FAILED``) of at most 10 MB (else 413 ``Request Entity Too Large``), the
  caption at most 1,024 UTF-16 code units (``message caption is too long``), a media group
  of 2 to 10 items (``Bad Request: too many messages to send as an album`` / ``…must include
  2-10 items``), each ``attach://`` naming an uploaded part;
- ``reply_parameters``: the message replied to exists in that chat, else ``message to be
  replied not found``;
- ``deleteMessage``: ``message to delete not found`` for one that is gone.

Faults (:meth:`TelegramServer.fail_next`, each consumed by the next request to ``method``,
or to any method when None): ``"429"`` (flood control, ``retry_after``), ``"401"``,
``"403"``, ``"400"`` (a refusal: ``Bad Request: PEER_ID_INVALID``), ``"500"`` (Telegram's
``Internal Server Error`` envelope), ``"502"`` (the front's HTML page: no envelope),
``"malformed"`` (a 200 cut mid-JSON), ``"drop"`` (the connection closed before anything is
done), ``"drop_after_store"`` (the message is stored, then the connection closed without an
answer), ``"hang"`` (no answer until the server stops).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from requests.structures import CaseInsensitiveDict

from servers.translate import (
    Call,
    FakeTranslationServer,
    Response,
    _flatten,
    _Handler,
    json_response,
)

__all__ = ["Chat", "Sent", "TelegramServer", "Upload", "token_for"]

_TOKEN_SHAPE = re.compile(r"[0-9]{5,12}:[A-Za-z0-9_-]{35}")
TEXT_MAX = 4096
CAPTION_MAX = 1024
PHOTO_MAX = 10 * 1024 * 1024
METHODS = frozenset(
    {
        "getMe",
        "getChat",
        "getChatMember",
        "sendMessage",
        "sendPhoto",
        "sendMediaGroup",
        "deleteMessage",
    }
)
FAULTS = frozenset(
    {"429", "401", "403", "400", "500", "502", "malformed", "drop", "drop_after_store", "hang"}
)


def token_for(bot_id: int, seed: str = "x") -> str:
    """A token shaped like Telegram's (``<bot id>:<35 characters>``)."""
    body = (seed * 35)[:35]
    return f"{bot_id}:{body}"


@dataclass
class Upload:
    """A file part of a multipart request."""

    filename: str
    data: bytes
    content_type: str


@dataclass
class Chat:
    """A channel: its id (``-100…``), @name, title and the bots that may post in it."""

    id: int
    username: str | None
    title: str
    admins: set[int] = field(default_factory=set)
    # Administrators without a right: "post" (can_post_messages), "delete".
    withheld: dict[int, set[str]] = field(default_factory=dict)


@dataclass
class Sent:
    """A message as the fake holds it."""

    message_id: int
    chat_id: int
    text: str | None
    caption: str | None
    photos: tuple[bytes, ...]
    reply_to: int | None
    date: int
    media_group_id: str | None = None
    deleted: bool = False

    @property
    def body(self) -> str:
        return self.text if self.text is not None else (self.caption or "")


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _image_kind(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _png_size(data: bytes) -> tuple[int, int]:
    if data.startswith(b"\x89PNG") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return 800, 600


class _Refusal(Exception):
    """An error answer, in the Bot API's envelope."""

    def __init__(self, status: int, description: str, **parameters: Any) -> None:
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters

    def response(self) -> Response:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        answer = json_response(body, self.status)
        if "retry_after" in self.parameters:
            answer.headers["Retry-After"] = str(self.parameters["retry_after"])
        return answer


def _bad(description: str) -> _Refusal:
    return _Refusal(400, f"Bad Request: {description}")


_DROP = Response(0, b"", "")  # close the connection without an answer


class TelegramServer(FakeTranslationServer):
    """The Bot API of a few bots and channels (see the module docstring).

    ``bots``: token → (bot id, username). ``chats``: the channels.
    """

    def __init__(
        self, bots: dict[str, tuple[int, str]], chats: list[Chat], *, retry_after: int = 7
    ) -> None:
        super().__init__()
        self.bots = dict(bots)
        self.chats = {c.id: c for c in chats}
        self.retry_after = retry_after
        self.messages: list[Sent] = []
        self._ids = itertools.count(101)
        self._groups = itertools.count(13_000_000_000_000_001)
        self._script: deque[tuple[str, str | None]] = deque()
        self._state = threading.Lock()

    # -- scripting and inspection -----------------------------------------------------------

    def fail_next(self, kind: str, count: int = 1, *, method: str | None = None) -> None:  # type: ignore[override]
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}: use one of {', '.join(sorted(FAULTS))}")
        with self._lock:
            self._script.extend([(kind, method)] * count)

    def stored(self, chat_id: int) -> list[Sent]:
        """The chat's messages that are not deleted, oldest first."""
        with self._state:
            return [m for m in self.messages if m.chat_id == chat_id and not m.deleted]

    def sends(self) -> list[Call]:
        """The requests that send a message."""
        return [c for c in self.calls if c.path.rsplit("/", 1)[-1].startswith("send")]

    # -- serving ----------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        call = self._read(handler)
        method = call.path.rsplit("/", 1)[-1]
        with self._lock:
            fault = None
            for index, (kind, wanted) in enumerate(self._script):
                if wanted is None or wanted == method:
                    fault = kind
                    del self._script[index]
                    break
            self._calls.append(replace(call, fault=fault))
        handler.close_connection = True
        if fault == "hang":
            self._stopping.wait()
            return
        if fault == "drop":
            return
        try:
            if fault is not None and fault != "drop_after_store":
                response = self._fault(fault)
            else:
                response = self.route(call)
                if fault == "drop_after_store":
                    response = _DROP
        except _Refusal as refusal:
            response = refusal.response()
        except Exception as exc:
            self.errors.append(exc)
            response = Response(500, traceback.format_exc().encode(), "text/plain")
        if response is _DROP:
            return
        self._write(handler, response)

    def _fault(self, kind: str) -> Response:
        if kind == "429":
            return _Refusal(
                429,
                f"Too Many Requests: retry after {self.retry_after}",
                retry_after=self.retry_after,
            ).response()
        if kind == "401":
            return _Refusal(401, "Unauthorized").response()
        if kind == "403":
            return _Refusal(403, "Forbidden: bot was kicked from the channel chat").response()
        if kind == "400":
            return _bad("PEER_ID_INVALID").response()
        if kind == "500":
            return _Refusal(500, "Internal Server Error").response()
        if kind == "502":
            page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            return Response(502, page, "text/html")
        return Response(200, b'{"ok":true,"result":{"message_id":', "application/json")

    @staticmethod
    def _read(handler: _Handler) -> Call:
        """The request, multipart bodies included (files as :class:`Upload`)."""
        split = urlsplit(handler.path)
        params: dict[str, Any] = _flatten(parse_qs(split.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        kind = handler.headers.get_content_type()
        body: Any = None
        if raw and kind == "multipart/form-data":
            head = f"Content-Type: {handler.headers['Content-Type']}\r\n\r\n".encode()
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
            body = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                data = part.get_payload(decode=True) or b""
                if part.get_filename() is not None:
                    body[str(name)] = Upload(
                        part.get_filename() or "", data, part.get_content_type()
                    )
                else:
                    body[str(name)] = data.decode("utf-8")
        elif raw and kind == "application/json":
            body = json.loads(raw)
        elif raw and kind == "application/x-www-form-urlencoded":
            body = _flatten(parse_qs(raw.decode("utf-8"), keep_blank_values=True))
        elif raw:
            body = raw.decode("utf-8", "replace")
        if isinstance(body, dict):
            params.update(body)
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(dict(handler.headers.items()))
        return Call(handler.command, split.path, params, body, headers)

    # -- the Bot API ------------------------------------------------------------------------

    def route(self, call: Call) -> Response:
        match = re.fullmatch(r"/bot([^/]*)/([A-Za-z]+)", call.path)
        if match is None or not _TOKEN_SHAPE.fullmatch(match[1]):
            raise _Refusal(404, "Not Found")
        bot = self.bots.get(match[1])
        if bot is None:
            raise _Refusal(401, "Unauthorized")
        method = match[2]
        if method not in METHODS:
            raise _Refusal(404, "Not Found")
        handler = getattr(self, f"_{method}")
        with self._state:
            result = handler(bot, call.params)
        return json_response({"ok": True, "result": result})

    def _getMe(self, bot: tuple[int, str], _params: dict[str, Any]) -> Any:
        return {
            "id": bot[0],
            "is_bot": True,
            "first_name": bot[1].replace("_", " "),
            "username": bot[1],
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _getChat(self, _bot: tuple[int, str], params: dict[str, Any]) -> Any:
        chat = self._chat(params)
        return {
            **self._chat_json(chat),
            "accent_color_id": 1,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _getChatMember(self, bot: tuple[int, str], params: dict[str, Any]) -> Any:
        chat = self._chat(params)
        if bot[0] not in chat.admins:  # a channel's members are for its administrators
            raise _bad("member list is inaccessible")
        try:
            user_id = int(str(params.get("user_id")))
        except ValueError:
            raise _bad("invalid user_id specified") from None
        user = {"id": user_id, "is_bot": True, "first_name": "bot"}
        if user_id not in chat.admins:
            return {"status": "left", "user": user}
        withheld = chat.withheld.get(user_id, set())
        rights = dict.fromkeys(
            (
                "can_manage_chat",
                "can_change_info",
                "can_invite_users",
                "can_post_stories",
                "can_edit_stories",
                "can_delete_stories",
                "can_manage_video_chats",
                "can_restrict_members",
                "can_promote_members",
            ),
            True,
        )
        return {
            "status": "administrator",
            "user": user,
            "can_be_edited": False,
            "is_anonymous": False,
            **rights,
            "can_post_messages": "post" not in withheld,
            "can_edit_messages": True,
            "can_delete_messages": "delete" not in withheld,
        }

    def _sendMessage(self, bot: tuple[int, str], params: dict[str, Any]) -> Any:
        chat = self._postable(bot, params)
        text = str(params.get("text") or "").strip()
        if not text:
            raise _bad("message text is empty")
        if _utf16(text) > TEXT_MAX:
            raise _bad("message is too long")
        reply_to = self._reply_to(chat, params)
        sent = self._store(chat, text=text, caption=None, photos=(), reply_to=reply_to)
        return self._message_json(chat, sent)

    def _sendPhoto(self, bot: tuple[int, str], params: dict[str, Any]) -> Any:
        chat = self._postable(bot, params)
        photo = self._photo(params, params.get("photo"))
        caption = self._caption(params.get("caption"))
        reply_to = self._reply_to(chat, params)
        sent = self._store(chat, text=None, caption=caption, photos=(photo,), reply_to=reply_to)
        return self._message_json(chat, sent)

    def _sendMediaGroup(self, bot: tuple[int, str], params: dict[str, Any]) -> Any:
        chat = self._postable(bot, params)
        media = _json_param(params.get("media"))
        if not isinstance(media, list):
            raise _bad("can't parse media JSON object")
        if len(media) < 2:
            raise _bad("media group must include 2-10 items")
        if len(media) > 10:
            raise _bad("too many messages to send as an album")
        photos, captions = [], []
        for item in media:
            if not isinstance(item, dict) or item.get("type") != "photo":
                raise _bad("wrong media type in the group")
            ref = str(item.get("media") or "")
            if not ref.startswith("attach://"):
                raise _bad("wrong HTTP URL specified")
            photos.append(self._photo(params, params.get(ref.removeprefix("attach://"))))
            captions.append(self._caption(item.get("caption")))
        reply_to = self._reply_to(chat, params)
        group = str(next(self._groups))
        sent = [
            self._store(
                chat,
                text=None,
                caption=caption,
                photos=(photo,),
                reply_to=reply_to,
                group=group,
            )
            for photo, caption in zip(photos, captions, strict=True)
        ]
        return [self._message_json(chat, s) for s in sent]

    def _deleteMessage(self, bot: tuple[int, str], params: dict[str, Any]) -> Any:
        chat = self._postable(bot, params)
        try:
            message_id = int(str(params.get("message_id")))
        except ValueError:
            raise _bad("message identifier is not specified") from None
        for sent in self.messages:
            if sent.chat_id == chat.id and sent.message_id == message_id and not sent.deleted:
                sent.deleted = True
                return True
        raise _bad("message to delete not found")

    # -- checks -----------------------------------------------------------------------------

    def _chat(self, params: dict[str, Any]) -> Chat:
        wanted = str(params.get("chat_id") or "")
        for chat in self.chats.values():
            if wanted == str(chat.id) or (
                chat.username and wanted.lower() == f"@{chat.username}".lower()
            ):
                return chat
        raise _bad("chat not found")

    def _postable(self, bot: tuple[int, str], params: dict[str, Any]) -> Chat:
        chat = self._chat(params)
        if bot[0] not in chat.admins:
            raise _Refusal(403, "Forbidden: bot is not a member of the channel chat")
        if "post" in chat.withheld.get(bot[0], set()) and params.get("message_id") is None:
            raise _bad("need administrator rights in the channel chat")
        if "delete" in chat.withheld.get(bot[0], set()) and params.get("message_id") is not None:
            raise _bad("message can't be deleted")
        return chat

    def _photo(self, params: dict[str, Any], value: Any) -> bytes:
        del params
        if not isinstance(value, Upload):
            raise _bad("wrong remote file identifier specified: wrong padding in the string")
        if len(value.data) > PHOTO_MAX:
            raise _Refusal(413, "Request Entity Too Large")
        if _image_kind(value.data) is None:
            raise _bad("IMAGE_PROCESS_FAILED")
        return value.data

    @staticmethod
    def _caption(value: Any) -> str | None:
        caption = str(value).strip() if value is not None else ""
        if _utf16(caption) > CAPTION_MAX:
            raise _bad("message caption is too long")
        return caption or None

    def _reply_to(self, chat: Chat, params: dict[str, Any]) -> int | None:
        raw = params.get("reply_parameters")
        if raw is None:
            return None
        parameters = _json_param(raw)
        if not isinstance(parameters, dict) or not isinstance(parameters.get("message_id"), int):
            raise _bad("can't parse reply parameters JSON object")
        wanted = parameters["message_id"]
        if any(
            m.chat_id == chat.id and m.message_id == wanted and not m.deleted for m in self.messages
        ):
            return int(wanted)
        if parameters.get("allow_sending_without_reply"):
            return None
        raise _bad("message to be replied not found")

    def _store(
        self,
        chat: Chat,
        *,
        text: str | None,
        caption: str | None,
        photos: tuple[bytes, ...],
        reply_to: int | None,
        group: str | None = None,
    ) -> Sent:
        sent = Sent(
            next(self._ids), chat.id, text, caption, photos, reply_to, int(time.time()), group
        )
        self.messages.append(sent)
        return sent

    @staticmethod
    def _chat_json(chat: Chat) -> dict[str, Any]:
        found: dict[str, Any] = {"id": chat.id, "title": chat.title, "type": "channel"}
        if chat.username:
            found["username"] = chat.username
        return found

    def _message_json(self, chat: Chat, sent: Sent) -> dict[str, Any]:
        found: dict[str, Any] = {
            "message_id": sent.message_id,
            "sender_chat": self._chat_json(chat),
            "chat": self._chat_json(chat),
            "date": sent.date,
        }
        if sent.text is not None:
            found["text"] = sent.text
        if sent.photos:
            width, height = _png_size(sent.photos[0])
            found["photo"] = [
                {
                    "file_id": f"AgACAgQAAx0C{sent.message_id:08d}",
                    "file_unique_id": f"AQAD{sent.message_id:06d}",
                    "file_size": len(sent.photos[0]),
                    "width": width,
                    "height": height,
                }
            ]
        if sent.caption is not None:
            found["caption"] = sent.caption
        if sent.media_group_id is not None:
            found["media_group_id"] = sent.media_group_id
        if sent.reply_to is not None:
            replied = next(m for m in self.messages if m.message_id == sent.reply_to)
            found["reply_to_message"] = {
                "message_id": replied.message_id,
                "sender_chat": self._chat_json(chat),
                "chat": self._chat_json(chat),
                "date": replied.date,
            }
        return found


def _json_param(value: Any) -> Any:
    """A parameter that carries JSON (``media``, ``reply_parameters``): a string in a form or
    multipart body, already an object in a JSON body."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value
