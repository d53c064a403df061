"""Publish to Telegram channels through python-telegram-bot's ``Bot`` (the Bot API), behind a
synchronous interface.

Each account is a channel (accounts.yaml's ``chat``, default ``@handle``) and a bot token
(``DIPLOBOT_<ACCOUNT>_BOT_TOKEN``) of a bot that is an administrator of it, allowed to post.
A text is ``sendMessage``; a text with one image ``sendPhoto`` (the text is its caption); with
several, ``sendMediaGroup`` (the caption on the first). A thread reaches this module joined
into one post (the registry's ``threads="join"``); a part that still replies to another is
sent with ``reply_parameters``.

The library is asynchronous: every call runs on one event loop owned by the publisher (a
daemon thread), and the caller waits for its result. Each request has the library's timeouts
(``DIPLOBOT_TELEGRAM_TIMEOUT`` to connect, write, read and wait for a pooled connection) and an
overall deadline, ``DEADLINE_FACTOR`` × the timeout, so an answer trickling in byte by byte
cannot hold the publish lock.

**Telegram cannot be searched.** The Bot API reads no channel's history (a bot receives no
update for its own messages): ``find`` raises :class:`PublishUnverifiable` and ``recent``
returns ``[]``. A send whose outcome is unknown (a timeout or a dropped connection after the
request was written, a 5xx, an answer that cannot be read) stays UNKNOWN: the deliverer tells a
person once what to check and never sends it again by itself (``docs/operations.md``,
"Telegram").

The library raises one ``NetworkError`` for a 5xx, a 413 and a lost connection alike, and
keeps no status code: :class:`_Recording` notes the status each answer had, and a failure is
classified by that status when there was an answer, by the network error when there was none.

The token is part of every request's URL: no message here carries a library's text without
the token taken out (:func:`_clean`), httpx's request log is silenced and redacted, and the
publisher's ``repr`` shows no token.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import re
import threading
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from telegram import Bot, InputMediaPhoto, Message, ReplyParameters
from telegram.error import ChatMigrated, RetryAfter, TelegramError
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from bot.envname import env_name
from bot.errors import (
    ConfigError,
    PublishAmbiguous,
    PublishAuthFailed,
    PublishError,
    PublishRateLimited,
    PublishRejected,
    PublishUnverifiable,
)
from bot.platforms import Account
from bot.publish.base import MediaItem, Outgoing, Published, Receipt
from bot.settings import Secret, Settings, read_credentials, read_timeout

DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
DEFAULT_TIMEOUT = 20.0
DEADLINE_FACTOR = 3
"""A request ends after this many times ``DIPLOBOT_TELEGRAM_TIMEOUT``, whatever happens."""
RATE_LIMIT_FALLBACK = timedelta(seconds=30)  # a 429 without ``retry_after``
RATE_LIMIT_LONGEST = timedelta(hours=24)
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
"""Network errors raised before the request left: Telegram cannot have acted on it."""

T = TypeVar("T")


@dataclass(frozen=True)
class TelegramSettings:
    """Each account's bot token, the API base and the timeout."""

    tokens: Mapping[str, Secret] = field(repr=False)
    missing: Mapping[str, str]
    api_url: str = DEFAULT_TELEGRAM_API_URL
    timeout: float = DEFAULT_TIMEOUT


def token_variable(account: str) -> str:
    return f"DIPLOBOT_{env_name(account)}_BOT_TOKEN"


def read_settings(settings: Settings, accounts: list[str]) -> TelegramSettings:
    """The bot token of each account (``DIPLOBOT_<ACCOUNT>_BOT_TOKEN`` or its ``_FILE``),
    ``DIPLOBOT_TELEGRAM_API_URL`` and ``DIPLOBOT_TELEGRAM_TIMEOUT``.

    Raises:
        ConfigError: a variable and its ``_FILE`` are both set, a file cannot be read, or the
            timeout is not a number from 0.1 to 600.
    """
    env = settings.platform_env
    tokens, missing = read_credentials(env, accounts, "BOT_TOKEN")
    timeout = read_timeout(env, "DIPLOBOT_TELEGRAM_TIMEOUT", DEFAULT_TIMEOUT)
    api_url = (env.get("DIPLOBOT_TELEGRAM_API_URL") or DEFAULT_TELEGRAM_API_URL).rstrip("/")
    return TelegramSettings(tokens, missing, api_url, timeout)


def publisher(
    settings: TelegramSettings, accounts: Mapping[str, Account]
) -> TelegramPublisher | None:
    """The publisher of the accounts that have a token (None when none has)."""
    chats = {
        a: getattr(acct, "chat", None) or f"@{acct.handle}"
        for a, acct in accounts.items()
        if a in settings.tokens
    }
    if not chats:
        return None
    return TelegramPublisher(
        {a: settings.tokens[a] for a in chats},
        chats,
        {a: accounts[a].handle for a in chats},
        api_url=settings.api_url,
        timeout=settings.timeout,
    )


@dataclass
class _Progress:
    """What became of the call's last request: the HTTP status Telegram answered."""

    status: int | None = None


_PROGRESS: ContextVar[_Progress | None] = ContextVar("diplobot_telegram_progress", default=None)


class _Recording(HTTPXRequest):
    """The library's httpx transport, noting each answer's status for :func:`_failure`."""

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        code, payload = await super().do_request(*args, **kwargs)
        progress = _PROGRESS.get()
        if progress is not None:
            progress.status = code
        return code, payload


_BOT_PATH = re.compile(r"bot[0-9]+:[A-Za-z0-9_-]+")


class _Redact(logging.Filter):
    """httpx logs each request's URL, which carries the token: never as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _BOT_PATH.sub("bot***", str(record.msg))
        if record.args:
            record.args = tuple(
                _BOT_PATH.sub("bot***", a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        return True


def _quiet_logs() -> None:
    # python-telegram-bot warns (a UserWarning, shown on a terminal) on every flood-control
    # answer that ``retry_after`` will become a timedelta: read here as a timedelta already.
    warnings.filterwarnings(
        "ignore", message=r".*attribute `retry_after`", category=PTBDeprecationWarning
    )
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _Redact) for f in httpx_log.filters):
        httpx_log.addFilter(_Redact())
    for name in ("httpx", "httpcore", "telegram"):
        if logging.getLogger(name).level < logging.WARNING:
            logging.getLogger(name).setLevel(logging.WARNING)


class TelegramPublisher:
    """The Bot API for every account (channel) it has a bot token for."""

    name = "telegram"

    def __init__(
        self,
        tokens: Mapping[str, Secret],
        chats: Mapping[str, str],
        handles: Mapping[str, str],
        *,
        api_url: str = DEFAULT_TELEGRAM_API_URL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._tokens = dict(tokens)
        self.chats = dict(chats)  # account → @name or numeric id
        self.handles = dict(handles)
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.deadline = DEADLINE_FACTOR * timeout
        self._bots: dict[str, Bot] = {}
        self._usernames: dict[str, str] = {}  # account → the channel's @name, once read
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        _quiet_logs()

    def __repr__(self) -> str:
        return f"TelegramPublisher(accounts={sorted(self.chats)}, api_url={self.api_url!r})"

    # -- the Publisher protocol -------------------------------------------------------------

    def publish(self, item: Outgoing) -> Receipt:
        chat = self._chat(item.account)
        reply = None
        if item.reply_to is not None:
            try:
                reply = ReplyParameters(message_id=int(item.reply_to.remote_id))
            except ValueError:
                raise PublishRejected(
                    f"cannot reply to '{item.reply_to.remote_id}': not a Telegram message id"
                ) from None
        photos = [_read(m) for m in item.media]

        async def send(bot: Bot) -> Message:
            if not photos:
                return await bot.send_message(chat, item.text, reply_parameters=reply)
            if len(photos) == 1:
                name, data = photos[0]
                return await bot.send_photo(
                    chat, data, caption=item.text or None, filename=name, reply_parameters=reply
                )
            media = [
                InputMediaPhoto(
                    data, caption=item.text if i == 0 and item.text else None, filename=name
                )
                for i, (name, data) in enumerate(photos)
            ]
            sent = await bot.send_media_group(chat, media, reply_parameters=reply)
            if not sent:
                raise TelegramError("an empty media group")
            return sent[0]

        message = self._run(item.account, send, sends=True)
        message_id = getattr(message, "message_id", None)
        if not isinstance(message_id, int):
            raise PublishAmbiguous("Telegram's answer gives no message id: the post may exist")
        return item.receipt(str(message_id), self._url(item.account, message, message_id))

    def find(self, item: Outgoing, since: datetime) -> Receipt | None:
        """Never answers: the Bot API cannot read a channel's messages.

        Raises:
            PublishUnverifiable: always, saying where a person can look.
        """
        raise PublishUnverifiable(
            "the Telegram Bot API cannot read a channel's messages: open "
            f"{self.channel_link(item.account)} and look for the post sent after "
            f"{since.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        )

    def recent(self, account: str, since: datetime) -> list[Published]:
        """``[]``: the Bot API reads no channel history (another publisher on a Telegram
        channel goes unseen by the service's watch)."""
        self._chat(account)
        return []

    def delete(self, account: str, remote_id: str) -> None:
        chat = self._chat(account)
        try:
            message_id = int(remote_id)
        except ValueError:
            raise PublishError(f"'{remote_id}' is not a Telegram message id") from None

        async def delete(bot: Bot) -> bool:
            return await bot.delete_message(chat, message_id)

        try:
            done = self._run(account, delete, sends=False)
        except PublishRejected as exc:
            if "message to delete not found" in str(exc).lower():
                return  # already gone
            raise PublishError(
                f"Telegram did not delete {self._link(account, message_id)}: {exc}"
            ) from exc
        if done is not True:
            raise PublishError(
                f"Telegram did not confirm the deletion of {self._link(account, message_id)}"
            )

    def whoami(self, account: str) -> str:
        """The channel's @name (without @) as Telegram gives it (its numeric id for a private
        channel), after ``getMe`` showed the token is a bot's."""
        chat = self._chat(account)

        async def ask(bot: Bot) -> Any:
            await bot.get_me()
            return await bot.get_chat(chat)

        found = self._run(account, ask, sends=False)
        username = getattr(found, "username", None)
        if isinstance(username, str) and username:
            self._usernames[account] = username
            return username
        chat_id = getattr(found, "id", None)
        if not isinstance(chat_id, int):
            raise PublishError("Telegram's answer to getChat gives no chat")
        return str(chat_id)

    def check(self, account: str) -> list[str]:
        """What ``accounts check`` should say beyond ``whoami``: the bot is an administrator
        of the channel, allowed to post (else every post fails) and to delete (else
        ``retract`` cannot).

        Raises:
            PublishError: Telegram could not be asked.
        """
        chat = self._chat(account)
        link = self.channel_link(account)

        async def ask(bot: Bot) -> Any:
            me = await bot.get_me()
            return await bot.get_chat_member(chat, me.id)

        try:
            member = self._run(account, ask, sends=False)
        except PublishRejected as exc:
            return [f"the bot is not an administrator of {link} ({exc}): add it, allowed to post"]
        status = getattr(member, "status", None)
        if status not in ("administrator", "creator"):
            return [
                f"the bot is not an administrator of {link} ({status}): add it, allowed to post"
            ]
        warnings = []
        if status == "administrator" and not getattr(member, "can_post_messages", False):
            warnings.append(f"the bot may not post in {link}: give it 'Post messages'")
        if status == "administrator" and not getattr(member, "can_delete_messages", False):
            warnings.append(
                f"the bot may not delete messages in {link}: retract will fail; give it "
                "'Delete messages of others'"
            )
        return warnings

    # -- helpers ----------------------------------------------------------------------------

    def channel_link(self, account: str) -> str:
        """Where a person sees the channel: ``https://t.me/<name>`` (the chat id when it has
        no @name)."""
        chat = self._usernames.get(account) or self.chats.get(account, account)
        if chat.startswith("@") or not chat.lstrip("-").isdigit():
            return f"https://t.me/{chat.lstrip('@')}"
        return f"https://t.me/c/{chat.removeprefix('-100').lstrip('-')}"

    def _link(self, account: str, message_id: int) -> str:
        return f"{self.channel_link(account)}/{message_id}"

    def _url(self, account: str, message: Any, message_id: int) -> str:
        username = getattr(getattr(message, "chat", None), "username", None)
        if isinstance(username, str) and username:
            self._usernames[account] = username
        return self._link(account, message_id)

    def _chat(self, account: str) -> str:
        chat = self.chats.get(account)
        if chat is None or account not in self._tokens:
            raise ConfigError(f"no Telegram bot token for account '{account}'")
        return chat

    def _run(self, account: str, call: Callable[[Bot], Awaitable[T]], *, sends: bool) -> T:
        """``call(bot)`` on the loop, within the deadline; any failure as a PublishError.
        ``sends``: the request creates a post (a failure after it left is ambiguous)."""
        token = self._tokens[account].reveal()

        async def guarded() -> T:
            progress = _Progress()
            _PROGRESS.set(progress)
            try:
                bot = self._bot(account)
                return await asyncio.wait_for(call(bot), self.deadline)
            except PublishError:
                raise
            except Exception as exc:  # the library's, or a defect on an odd answer
                raise _failure(
                    exc, progress, sends=sends, token=token, seconds=self.deadline
                ) from exc

        return self._submit(guarded)

    def _bot(self, account: str) -> Bot:
        """On the loop thread: the account's bot, made on first use."""
        bot = self._bots.get(account)
        if bot is None:
            t = self.timeout
            bot = Bot(
                self._tokens[account].reveal(),
                base_url=f"{self.api_url}/bot",
                base_file_url=f"{self.api_url}/file/bot",
                request=_Recording(
                    connect_timeout=t,
                    read_timeout=t,
                    write_timeout=t,
                    pool_timeout=t,
                    media_write_timeout=t,
                ),
                get_updates_request=_Recording(
                    connect_timeout=t, read_timeout=t, write_timeout=t, pool_timeout=t
                ),
            )
            self._bots[account] = bot
        return bot

    def _submit(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="telegram-api", daemon=True).start()
                self._loop = loop
                atexit.register(self.close)
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(make(), loop).result()

    def close(self) -> None:
        """Close the bots' connections and stop the loop (at exit)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return

        async def shutdown() -> None:
            for bot in self._bots.values():
                with contextlib.suppress(Exception):  # closing: nothing left to do about it
                    await bot.shutdown()
            self._bots.clear()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=5)
        except Exception:  # the loop is gone or stuck: the process is ending anyway
            pass
        finally:
            loop.call_soon_threadsafe(loop.stop)


def _read(media: MediaItem) -> tuple[str, bytes]:
    """An image's name and bytes, before anything is sent (a file that cannot be read is a
    refusal: it will not be readable on the next try either)."""
    try:
        data = media.data if media.data is not None else media.path.read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PublishRejected(f"cannot read image {media.path.name}: {reason}") from None
    return media.path.name, data


def _clean(text: str, token: str) -> str:
    """A library's message without the token (it is in every URL), first line, bounded."""
    if token:
        text = text.replace(token, "***")
    text = _BOT_PATH.sub("bot***", text)
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else ""


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _failure(
    exc: Exception, progress: _Progress, *, sends: bool, token: str, seconds: float
) -> PublishError:
    """What a failed call means: by Telegram's status when it answered one, else by the
    network error (before the request left, or after)."""
    detail = _clean(str(exc), token) if isinstance(exc, TelegramError) else ""
    status = progress.status
    if isinstance(exc, RetryAfter) or status == 429:
        now = datetime.now(UTC)
        wait = exc._retry_after if isinstance(exc, RetryAfter) else RATE_LIMIT_FALLBACK
        wait = min(max(wait, timedelta(0)), RATE_LIMIT_LONGEST)
        return PublishRateLimited(
            f"Telegram flood control (429): retry after {int(wait.total_seconds())} s", now + wait
        )
    if isinstance(exc, ChatMigrated):
        return PublishRejected(
            f"Telegram says the chat moved to {exc.new_chat_id}: set chat: {exc.new_chat_id} "
            "in accounts.yaml"
        )
    if status is not None and not 200 <= status < 300:
        if status in (401, 404):
            return PublishAuthFailed(
                f"Telegram refused the bot token ({status}): check the account's "
                "DIPLOBOT_<ACCOUNT>_BOT_TOKEN"
            )
        if status == 403:
            return PublishAuthFailed(
                f"Telegram refused the bot (403: {detail or 'Forbidden'}): make the bot an "
                "administrator of the channel, allowed to post"
            )
        if status == 413:
            return PublishRejected("Telegram refused the request as too large (413)")
        if 400 <= status < 500:
            return PublishRejected(f"Telegram refused the message ({status}): {detail}")
        if sends:
            return PublishAmbiguous(f"Telegram answered {status}: the post may or may not exist")
        return PublishError(f"Telegram answered {status}: try again later")
    causes = _causes(exc)
    if status is None and any(isinstance(c, _NOT_SENT) for c in causes):
        return PublishError("could not connect to Telegram (nothing was sent)")
    if isinstance(exc, TimeoutError) and status is None:
        problem = f"Telegram did not answer within {seconds:g} s"
    elif status is not None:  # a 2xx the library could not read
        problem = f"Telegram answered {status} with a body diplobot cannot read"
    elif any(isinstance(c, httpx.TimeoutException) for c in causes):
        problem = "Telegram did not answer in time"
    elif any(isinstance(c, httpx.HTTPError) for c in causes):
        problem = "the connection to Telegram was lost"
    else:
        problem = f"unexpected error talking to Telegram ({type(exc).__name__})"
    if sends:
        return PublishAmbiguous(f"{problem}: the post may exist")
    return PublishError(problem)
