"""Publish to Mastodon through Mastodon.py, one client per account on its own instance.

Each account of ``platform: mastodon`` names its instance (``instance:`` in accounts.yaml, the
client's ``api_base_url``) and has a user access token (``DIPLOBOT_<ACCOUNT>_ACCESS_TOKEN``,
scopes ``read write``). What is set on the library, and why:

- ``request_timeout``: Mastodon.py waits 300 s by default; ``DIPLOBOT_MASTODON_TIMEOUT`` (20 s)
  bounds the connection and each read, and every request ends after ``DEADLINE_FACTOR`` × that
  whatever happens (the session shuts the socket of a request past its deadline).
- ``ratelimit_method="throw"``: the default ("wait") sleeps inside the call, up to five
  minutes, holding the delivery's claim. A 429 becomes :class:`PublishRateLimited` whose
  ``retry_at`` is the instance's ``X-RateLimit-Reset``.
- ``mastodon_version`` declared (4.0.0, ``version_check_mode="created"``): otherwise the library
  asks ``/api/v1/instance`` for the version before the first upload, and on any failure takes
  the instance for 1.0.0 and falls back to the retired synchronous ``/api/v1/media``.
- The requests session is diplobot's (:class:`_Session`): it remembers, per thread, the last
  answer the instance gave, so that a failure is classified by the status and headers the
  instance answered (a 429's reset, a 422's message), not by the library's exception, which
  keeps neither.

Posting: every image is uploaded with ``POST /api/v2/media`` and its alt text as
``description``; the instance processes it asynchronously (``202``, ``url: null``) and refuses a
status naming an unprocessed attachment, so the publisher polls ``GET /api/v1/media/:id`` until
the ``url`` is there. The status carries ``language`` (the ISO 639 part of the text's BCP 47 tag),
``in_reply_to_id`` for a thread's later parts, and an ``Idempotency-Key`` derived from the
delivery's key: the instance remembers it for an hour and answers a repeated request with the
status it already created, so a retry after a lost answer never posts twice.

Reconciliation reads the account's statuses (``GET /api/v1/accounts/:id/statuses``, Link-header
pages) and turns each status's HTML back into the text as it was sent (:func:`plain_text`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import mimetypes
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
from mastodon import Mastodon, MastodonError, MastodonNetworkError

from bot.envname import env_name
from bot.errors import (
    ConfigError,
    PublishAmbiguous,
    PublishAuthFailed,
    PublishError,
    PublishRateLimited,
    PublishRejected,
)
from bot.platforms import MASTODON
from bot.publish.base import MediaItem, Outgoing, Published, Receipt
from bot.publish.match import same_text
from bot.settings import Secret, ca_bundle, read_credentials, read_timeout

if TYPE_CHECKING:
    from bot.platforms import Account
    from bot.settings import Settings

DEFAULT_TIMEOUT = 20.0
TIMEOUT_VARIABLE = "DIPLOBOT_MASTODON_TIMEOUT"
DECLARED_VERSION = "4.0.0"  # /api/v2/media and /api/v2/instance: every instance still running
RATE_LIMIT_FALLBACK = timedelta(minutes=5)  # Mastodon's general window, when no reset header
RATE_LIMIT_LONGEST = timedelta(hours=3)  # its longest window (300 statuses per 3 hours)
PAGE_SIZE = 40  # the most GET /api/v1/accounts/:id/statuses gives at once
FIND_PAGES = 5  # at most 200 recent statuses are read when reconciling
DEADLINE_FACTOR = 3
"""A request to the instance ends after this many times the timeout, whatever happens."""
MEDIA_WAIT_FACTOR = 3
"""An upload's processing is awaited at most this many times the timeout."""
MEDIA_POLL = 0.25  # seconds between two reads of an attachment being processed (doubling)
_STATUS_ID = re.compile(r"[0-9A-Za-z]{1,64}")  # Mastodon's snowflakes; other servers' ULIDs

T = TypeVar("T")


# -- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MastodonSettings:
    """Each account's access token, what the others lack, and the timeout."""

    tokens: dict[str, Secret] = field(default_factory=dict, repr=False)
    missing: dict[str, str] = field(default_factory=dict)  # account → what to set
    timeout: float = DEFAULT_TIMEOUT
    ca_bundle: str | None = None


def read_settings(settings: Settings, accounts: list[str]) -> MastodonSettings:
    """The Mastodon settings of ``accounts`` from the process's ``DIPLOBOT_*`` variables.

    Raises:
        ConfigError: a token and its ``_FILE`` are both set, a file cannot be read, or the
            timeout is not a number from 0.1 to 600.
    """
    env = settings.platform_env
    tokens, missing = read_credentials(env, accounts, "ACCESS_TOKEN")
    timeout = read_timeout(env, TIMEOUT_VARIABLE, DEFAULT_TIMEOUT)
    bundle = ca_bundle(env)
    return MastodonSettings(tokens, missing, timeout, bundle)


def publisher(
    settings: MastodonSettings, accounts: Mapping[str, Account]
) -> MastodonPublisher | None:
    """The publisher of the accounts that have a token; None when none has.

    Raises:
        ConfigError: an account with a token names no instance (or not an http(s) URL).
    """
    held = {a: acct for a, acct in accounts.items() if a in settings.tokens}
    if not held:
        return None
    instances: dict[str, str] = {}
    for account_id, account in held.items():
        instance = getattr(account, "instance", None)
        if not isinstance(instance, str) or urlsplit(instance).scheme not in ("http", "https"):
            raise ConfigError(
                f"Mastodon account '{account_id}' needs its instance's URL: add "
                f"'instance: https://…' to it in schedules/accounts.yaml"
            )
        instances[account_id] = instance
    return MastodonPublisher(
        {a: MastodonAccount(instances[a], settings.tokens[a], held[a].handle) for a in held},
        timeout=settings.timeout,
        ca_bundle=settings.ca_bundle,
    )


# -- the publisher -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MastodonAccount:
    instance: str  # the instance's base URL
    token: Secret = field(repr=False)
    handle: str  # the user name on the instance, as accounts.yaml gives it


class _Watch:
    """The request under way on one thread: the connection it went out on, and whether its
    deadline passed (then the connection's socket is shut, which ends any read at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.connection: Any = None
        self.expired = False

    def attach(self, connection: Any) -> None:
        with self._lock:
            self.connection = connection
            expired = self.expired
        if expired:
            _shut(connection)

    def abort(self) -> None:
        with self._lock:
            self.expired = True
            connection = self.connection
        if connection is not None:
            _shut(connection)


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


_WATCH = threading.local()


class _Watched:
    """Mixed into urllib3's connections: each tells the request under way on its thread
    which connection it is, once connected and when it sends."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._watched()

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._watched()
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def _watched(self) -> None:
        watch: _Watch | None = getattr(_WATCH, "current", None)
        if watch is not None:
            watch.attach(self)


class _HTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter, its connections (direct or through an HTTP proxy) watched; through
    a SOCKS proxy, the read timeout alone bounds a request."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools have connections of their own
            manager.pool_classes_by_scheme = _POOLS
        return manager


class _Session(requests.Session):
    """requests' session for one account's client.

    - Every request ends after ``deadline`` seconds whatever happens: an answer trickling in
      one byte at a time never trips the read timeout, and would hold the delivery's claim.
      It then raises ``requests.ReadTimeout``.
    - It remembers, per thread, the last answer the instance gave (None while a request is
      under way, or when it got none): the status and headers a failure is classified by.
    """

    def __init__(self, ca_bundle: str | None, deadline: float) -> None:
        super().__init__()
        if ca_bundle:
            self.verify = ca_bundle
        self.deadline = deadline
        adapter = _Adapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self._last = threading.local()

    @property
    def last(self) -> requests.Response | None:
        found: requests.Response | None = getattr(self._last, "response", None)
        return found

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        self._last.response = None
        watch = _Watch()
        _WATCH.current = watch
        timer = threading.Timer(self.deadline, watch.abort)
        timer.daemon = True
        timer.start()
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.RequestException as exc:
            if watch.expired:
                raise requests.ReadTimeout(f"no full answer within {self.deadline:g} s") from exc
            raise
        finally:
            timer.cancel()
            _WATCH.current = None
        self._last.response = response
        return response


class MastodonPublisher:
    """The Mastodon API (through Mastodon.py) for every account it has a token for."""

    name = "mastodon"

    def __init__(
        self,
        accounts: dict[str, MastodonAccount],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ca_bundle: str | None = None,
    ) -> None:
        self.accounts = accounts
        self.timeout = timeout
        self.ca_bundle = ca_bundle
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[Mastodon, _Session]] = {}
        self._ids: dict[str, str] = {}  # account → its id on the instance
        self._usernames: dict[str, str] = {}  # account → the user name its token belongs to

    def __repr__(self) -> str:
        return f"MastodonPublisher(accounts={sorted(self.accounts)!r}, timeout={self.timeout:g})"

    def _account(self, account: str) -> MastodonAccount:
        try:
            return self.accounts[account]
        except KeyError:
            raise ConfigError(
                f"Mastodon credentials for account '{account}' missing: set "
                f"DIPLOBOT_{env_name(account)}_ACCESS_TOKEN"
            ) from None

    def _client(self, account: str) -> tuple[Mastodon, _Session]:
        own = self._account(account)
        with self._lock:
            made = self._clients.get(account)
            if made is None:
                session = _Session(self.ca_bundle, DEADLINE_FACTOR * self.timeout)
                client = Mastodon(
                    access_token=own.token.reveal(),
                    api_base_url=own.instance,
                    request_timeout=self.timeout,
                    ratelimit_method="throw",
                    mastodon_version=DECLARED_VERSION,
                    version_check_mode="created",
                    session=session,
                    user_agent="diplobot",
                )
                made = self._clients[account] = (client, session)
            return made

    def _call(self, account: str, call: Callable[[Mastodon], T], *, sent: bool, what: str) -> T:
        """One library call for ``account``; a failure becomes ours. ``sent``: whether the
        request, once written, may have had an effect (creating a status)."""
        client, session = self._client(account)
        try:
            return call(client)
        except MastodonError as exc:
            raise _failure(exc, session.last, sent=sent, what=what) from exc
        except (requests.RequestException, OSError, ValueError) as exc:  # the library's own
            raise _failure(exc, session.last, sent=sent, what=what) from exc

    # -- publishing --------------------------------------------------------------------------

    def publish(self, item: Outgoing) -> Receipt:
        self._check_account(item.account)
        media_ids = [self._upload(item.account, m) for m in item.media]
        status = self._call(
            item.account,
            lambda client: client.status_post(
                item.text,
                in_reply_to_id=item.reply_to_id,
                media_ids=media_ids or None,
                language=iso639(item.lang),
                idempotency_key=idempotency_key(item) or None,
            ),
            sent=True,
            what="posting",
        )
        status_id = _id(status)
        if status_id is None:
            # The instance accepted the request: the status may well exist.
            raise PublishAmbiguous("the Mastodon instance accepted the post but gave no id")
        url = _get(status, "url")
        return item.receipt(status_id, url if isinstance(url, str) else None)

    # -- reposts (amplification) -------------------------------------------------------------

    def repost(self, item: Outgoing) -> Receipt:
        """Reblog the original (``POST /api/v1/statuses/:id/reblog``). Mastodon keeps one
        reblog of a status per account and answers a second request with it: a retry never
        reblogs twice. The receipt is the reblog's own status. An original on another
        instance is first resolved there by its link (``/api/v2/search?resolve=true``)."""
        self._check_account(item.account)
        local = self._local_id(item)

        def reblog(client: Mastodon) -> Any:
            return client.status_reblog(local)

        try:
            status = self._call(item.account, reblog, sent=True, what="reblogging")
        except PublishRejected as exc:
            shown = item.repost_of.url if item.repost_of else local
            raise PublishRejected(f"{exc} (the original {shown}: was it deleted?)") from exc
        reblog_id = _id(status)
        if reblog_id is None:
            raise PublishAmbiguous("the Mastodon instance accepted the reblog but gave no id")
        url = _get(status, "url")
        original = item.repost_of
        fallback = original.url if original is not None else None
        return Receipt(reblog_id, url if isinstance(url, str) else fallback)

    def find_repost(self, item: Outgoing, since: datetime) -> Receipt | None:
        """The account's reblog of the original, among its statuses since ``since``."""
        try:
            local = self._local_id(item)
            user_id = self._user_id(item.account)
            what = "reading its statuses"
            page = self._call(
                item.account,
                lambda client: client.account_statuses(user_id, limit=PAGE_SIZE),
                sent=False,
                what=what,
            )
            for _ in range(FIND_PAGES):
                if not isinstance(page, list):
                    raise PublishError("the instance's answer is not a list of statuses")
                for raw in page:
                    created = _created_at(_get(raw, "created_at"))
                    if created is not None and created < since:
                        return None
                    if _id(_get(raw, "reblog") or {}) == local and (found := _id(raw)):
                        url = _get(raw, "url")
                        original = item.repost_of
                        fallback = original.url if original is not None else None
                        return Receipt(found, url if isinstance(url, str) else fallback)
                if not page:
                    return None
                page = self._call(
                    item.account, functools.partial(_next, page), sent=False, what=what
                )
                if page is None:
                    return None
        except PublishError as exc:
            raise self._unreadable(item.account, exc) from exc
        return None

    def unrepost(self, account: str, remote_id: str, original_id: str) -> None:
        """Undo the reblog ``remote_id``: ``POST /api/v1/statuses/:id/unreblog`` on the
        original as this instance knows it (read from the reblog itself). A reblog or an
        original already gone (404) is no error."""
        client, session = self._client(account)
        try:
            reblog = client.status(remote_id)
            local = _id(_get(reblog, "reblog") or {}) or original_id
            client.status_unreblog(local)
        except MastodonError as exc:
            last = session.last
            if last is not None and last.status_code == 404:
                return
            raise _failure(exc, last, sent=False, what="undoing the reblog") from exc

    def _local_id(self, item: Outgoing) -> str:
        """The original's status id on ``item.account``'s instance: its own id when it was
        published there, else the id the instance gives it once it resolved its link.

        Raises:
            PublishRejected: the instance cannot find it.
            PublishError: no original, or the instance could not be asked.
        """
        original = item.repost_of
        if original is None:
            raise PublishError("a reblog without its original: a defect to report")
        instance = urlsplit(self._account(item.account).instance)
        home = urlsplit(original.url or "")
        if not original.url or (home.scheme, home.netloc) == (instance.scheme, instance.netloc):
            return original.remote_id
        found = self._call(
            item.account,
            lambda client: client.search_v2(original.url, resolve=True, result_type="statuses"),
            sent=False,
            what="finding the original",
        )
        statuses = _get(found, "statuses")
        local = _id(statuses[0]) if isinstance(statuses, list) and statuses else None
        if local is None:
            raise PublishRejected(
                f"the instance of @{self._account(item.account).handle} cannot find the "
                f"original {original.url} (deleted, or not visible from there)"
            )
        return local

    def _check_account(self, account: str) -> None:
        """Before the first post to ``account``: its token must belong to the user name
        accounts.yaml gives it (two account ids may share a variable by mistake)."""
        expected = self._account(account).handle.lstrip("@").split("@")[0]
        actual = self._usernames.get(account) or self.whoami(account)
        if actual.lower() != expected.lower():
            raise PublishAuthFailed(
                f"the Mastodon token of account '{account}' belongs to @{actual}, but "
                f"schedules/accounts.yaml gives it the handle @{expected}; nothing was sent: set "
                f"DIPLOBOT_{env_name(account)}_ACCESS_TOKEN to @{expected}'s token (or correct "
                f"the handle)"
            )

    def _upload(self, account: str, media: MediaItem) -> str:
        """Upload one image with its alt text; wait until the instance has processed it.

        Nothing is public until the status is created: a failed upload is never ambiguous."""
        name = media.path.name
        try:
            data = media.data if media.data is not None else media.path.read_bytes()
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise PublishRejected(f"cannot read image {name}: {reason}") from exc
        mime = _image_type(data) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        what = f"uploading image {name}"
        attachment = self._call(
            account,
            lambda client: client.media_post(
                data, mime_type=mime, description=media.alt or None, file_name=name
            ),
            sent=False,
            what=what,
        )
        media_id = _id(attachment)
        if media_id is None:
            raise PublishError(f"{what}: the Mastodon instance gave no attachment id")
        deadline = time.monotonic() + MEDIA_WAIT_FACTOR * self.timeout
        pause = MEDIA_POLL
        while _get(attachment, "url") is None:  # 202: still being processed
            if time.monotonic() + pause > deadline:
                raise PublishError(
                    f"{what}: the Mastodon instance had not processed it after "
                    f"{MEDIA_WAIT_FACTOR * self.timeout:g} s; it will be tried again"
                )
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
            attachment = self._call(
                account, lambda client: client.media(media_id), sent=False, what=what
            )
        return media_id

    # -- reading -----------------------------------------------------------------------------

    def find(self, item: Outgoing, since: datetime) -> Receipt | None:
        """The account's status that is this delivery, published after ``since``: the same
        text (read back from its HTML), as many images, replying to the same status."""
        host = urlsplit(self._account(item.account).instance).hostname or ""
        sent = _local_mentions(item.text, host)
        try:
            for status in self._statuses(item.account, since):
                if (
                    status.reply_to == item.reply_to_id
                    and status.media == len(item.media)
                    and same_text(status.text, sent)
                ):
                    return item.receipt(status.remote_id, status.url)
        except PublishError as exc:
            raise self._unreadable(item.account, exc) from exc
        return None

    def recent(self, account: str, since: datetime) -> list[Published]:
        """The account's statuses since ``since``, newest first (at most ``FIND_PAGES`` pages
        of ``PAGE_SIZE``), their text as sent."""
        try:
            return list(self._statuses(account, since))
        except PublishError as exc:
            raise self._unreadable(account, exc) from exc

    def _statuses(self, account: str, since: datetime) -> Iterator[Published]:
        """The account's own statuses (no boosts) since ``since``, newest first."""
        user_id = self._user_id(account)
        what = "reading its statuses"
        page = self._call(
            account,
            lambda client: client.account_statuses(user_id, limit=PAGE_SIZE, exclude_reblogs=True),
            sent=False,
            what=what,
        )
        for _ in range(FIND_PAGES):
            if not isinstance(page, list):
                raise PublishError("the instance's answer is not a list of statuses")
            for raw in page:
                status = _published(raw)
                if status.created_at is not None and status.created_at < since:
                    return
                yield status
            if not page:
                return
            page = self._call(account, functools.partial(_next, page), sent=False, what=what)
            if page is None:
                return

    def _unreadable(self, account: str, exc: PublishError) -> PublishError:
        return PublishError(f"reading @{self._account(account).handle}'s statuses failed: {exc}")

    def delete(self, account: str, remote_id: str) -> None:
        """Delete a status; one already gone (404) is no error."""
        client, session = self._client(account)
        try:
            client.status_delete(remote_id)
        except MastodonError as exc:
            last = session.last
            if last is not None and last.status_code == 404:
                return
            raise _failure(exc, last, sent=False, what="deleting") from exc

    def whoami(self, account: str) -> str:
        """The user name the account's token belongs to (``verify_credentials``)."""
        me = self._call(
            account,
            lambda client: client.account_verify_credentials(),
            sent=False,
            what="checking the token",
        )
        user_id, username = _id(me), _get(me, "username")
        if user_id is None or not isinstance(username, str) or not username:
            raise PublishError("the instance's answer to verify_credentials gives no account")
        self._ids[account] = user_id
        self._usernames[account] = username
        return username

    def max_characters(self, account: str) -> int:
        """The instance's own text limit (``/api/v2/instance``:
        ``configuration.statuses.max_characters``), for ``accounts check``."""
        instance = self._call(
            account,
            lambda client: client.instance_v2(),
            sent=False,
            what="reading the instance's configuration",
        )
        limit = _get(_get(_get(instance, "configuration"), "statuses"), "max_characters")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            raise PublishError("the instance's configuration gives no max_characters")
        return limit

    def check(self, account: str) -> list[str]:
        """What ``accounts check`` should say of the account beyond its handle: an instance
        whose text limit is not the 500 characters diplobot checks texts against."""
        ours = MASTODON.limits.text
        theirs = self.max_characters(account)
        handle = self._account(account).handle
        if theirs < ours:
            return [
                f"@{handle}'s instance allows {theirs} characters, fewer than the {ours} "
                f"diplobot checks texts against: longer texts will be refused there"
            ]
        if theirs > ours:
            return [
                f"@{handle}'s instance allows {theirs} characters; diplobot still keeps "
                f"texts within {ours}"
            ]
        return []

    def _user_id(self, account: str) -> str:
        if account not in self._ids:
            self.whoami(account)
        return self._ids[account]


# -- helpers -----------------------------------------------------------------------------------


def idempotency_key(item: Outgoing) -> str:
    """The ``Idempotency-Key`` of ``item``'s delivery: the same for every attempt, ASCII
    whatever the post's id, and saying nothing of the account ("" without a delivery key)."""
    if not item.key:
        return ""
    return "diplobot-" + hashlib.sha256(item.key.encode("utf-8")).hexdigest()[:40]


_LANGUAGE = re.compile(r"[A-Za-z]{2,3}")


def iso639(tag: str) -> str | None:
    """The ISO 639 code Mastodon takes for a BCP 47 tag: ``zh-Hans`` → ``zh``, ``pt-BR`` →
    ``pt``; None (the instance guesses) for none or an unusable one."""
    primary = tag.replace("_", "-").split("-")[0]
    return primary.lower() if _LANGUAGE.fullmatch(primary) else None


def _next(page: Any, client: Mastodon) -> Any:
    """The page after ``page`` (its Link header's ``next``), or None."""
    return client.fetch_next(page)


def _local_mentions(text: str, host: str) -> str:
    """``text`` with a mention of an account of the instance itself written as Mastodon
    shows it: ``@user@host`` → ``@user``."""
    if not host:
        return text
    return re.sub(rf"(?<![\w/@])(@[A-Za-z0-9_]+)@{re.escape(host)}\b", r"\1", text, flags=re.I)


def _image_type(data: bytes) -> str | None:
    """The MIME type of an image from its first bytes (its name may not say)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _id(value: Any, key: str = "id") -> str | None:
    """An id of the answer as a plain ``str`` (Mastodon.py gives a ``str`` subclass whose repr
    is a number), or None when it has none."""
    found = _get(value, key)
    if isinstance(found, int) and not isinstance(found, bool):
        found = str(found)
    if not isinstance(found, str):
        return None
    plain = found[:]  # slicing a str subclass gives a str
    return plain if _STATUS_ID.fullmatch(plain) else None


def _published(status: Any) -> Published:
    """A status as it was sent. One that cannot be read is an error, not a miss: a miss
    would send the post again."""
    status_id = _id(status)
    content = _get(status, "content")
    media = _get(status, "media_attachments")
    reply = _id(status, "in_reply_to_id")
    if (
        status_id is None
        or not isinstance(content, str)
        or not isinstance(media, list)
        or (reply is None and _get(status, "in_reply_to_id") is not None)
    ):
        raise PublishError("the instance's answer is not a status as its API documents")
    mentions = _get(status, "mentions") or []
    accts = {
        m["url"]: m["acct"]
        for m in mentions
        if isinstance(m, dict) and isinstance(m.get("url"), str) and isinstance(m.get("acct"), str)
    }
    url = _get(status, "url")
    return Published(
        status_id,
        plain_text(content, accts),
        reply,
        len(media),
        _created_at(_get(status, "created_at")),
        url if isinstance(url, str) else None,
    )


def _created_at(value: Any) -> datetime | None:
    """``created_at`` (Mastodon.py parses it; a string when it could not): None when odd."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


class _Text(HTMLParser):
    """A status's HTML as the text it was made from (see :func:`plain_text`)."""

    def __init__(self, accts: Mapping[str, str]) -> None:
        super().__init__(convert_charrefs=True)
        self.accts = accts
        self.parts: list[str] = []
        self.paragraphs = 0
        self.link: list[tuple[str, str | None]] = []  # (kind, text) of each open <a>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "p":
            if self.paragraphs:
                self.parts.append("\n\n")
            self.paragraphs += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "a":
            found = dict(attrs)
            href, classes = found.get("href") or "", (found.get("class") or "").split()
            if "mention" in classes and "hashtag" not in classes and href in self.accts:
                self.link.append(("mention", "@" + self.accts[href]))
            elif classes and ("mention" in classes or "hashtag" in classes):
                self.link.append(("keep", None))  # a hashtag: its text is as written
            elif href:
                self.link.append(("url", href))  # the text is shortened: the link is whole
            else:
                self.link.append(("keep", None))
            text = self.link[-1][1]
            if text is not None:
                self.parts.append(text)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.link:
            self.link.pop()

    def handle_data(self, data: str) -> None:
        if any(kind != "keep" for kind, _ in self.link):
            return  # inside a link or mention written out whole at its start
        self.parts.append(data)


def plain_text(content: str, accts: Mapping[str, str] | None = None) -> str:
    """A status's ``content`` (HTML) as the text it was sent: paragraphs (``<p>``) separated by
    a blank line, ``<br>`` a line break, entities unescaped, a link (whose text Mastodon
    shortens, with ``…``) as its ``href``, a mention as ``@acct`` (``accts``: the mention's URL
    → its ``acct``, from the status's ``mentions``: ``user`` on the same instance,
    ``user@domain`` elsewhere), a hashtag as written."""
    parser = _Text(accts or {})
    parser.feed(content)
    parser.close()
    return "".join(parser.parts).strip()


def _from_status(
    status: int, headers: Mapping[str, str], detail: str, *, sent: bool, what: str
) -> PublishError:
    """The error an HTTP status of the instance means; ``sent``: the request may have had an
    effect."""
    where = f"{what}: the Mastodon instance"
    if status == 429:
        return PublishRateLimited(f"{where} answered 429 (rate limit)", _retry_at(headers))
    if status == 401:
        return PublishAuthFailed(
            f"{where} refused the access token (401): {detail or 'unauthorized'}; set a valid "
            f"token (scopes read write)"
        )
    if status == 403:
        return PublishAuthFailed(f"{where} refused the request (403): {detail or 'forbidden'}")
    if status >= 500:
        if sent:
            return PublishAmbiguous(f"{where} answered {status}: the post may or may not exist")
        return PublishError(f"{where} answered {status}: try again later")
    if 400 <= status < 500:
        return PublishRejected(f"{where} refused it ({status}): {detail or 'invalid request'}")
    return PublishError(f"{where} answered {status}")


def _retry_at(headers: Mapping[str, str]) -> datetime:
    """``X-RateLimit-Reset``: an ISO 8601 time (Mastodon) or epoch seconds (GoToSocial). One
    that is missing, unreadable or beyond the longest window is not believed."""
    now = datetime.now(UTC)
    raw = (headers.get("X-RateLimit-Reset") or "").strip()
    retry_at: datetime | None = None
    try:
        if raw.isdigit():
            retry_at = datetime.fromtimestamp(int(raw), UTC)
        elif raw:
            retry_at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if retry_at.tzinfo is None:
                retry_at = retry_at.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        retry_at = None
    if retry_at is None or retry_at > now + RATE_LIMIT_LONGEST:
        retry_at = now + RATE_LIMIT_FALLBACK
    return max(retry_at, now)


def _detail(response: requests.Response) -> str:
    """The ``error`` of a Mastodon error body (``{"error": "Validation failed: …"}``)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return str(error)[:300] if isinstance(error, str) else ""


def _network_error(exc: BaseException) -> BaseException | None:
    """The requests exception under a library one (Mastodon.py raises its own from it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.RequestException):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _failure(
    exc: BaseException, last: requests.Response | None, *, sent: bool, what: str
) -> PublishError:
    """What a failed call means, from how far its last request got: the instance's status
    when it answered (whatever the library made of it), else the network error."""
    if last is not None and not last.ok:
        return _from_status(last.status_code, last.headers, _detail(last), sent=sent, what=what)
    if last is not None:  # an answer the library could not use (not JSON, odd headers)
        problem = (
            f"{what}: the Mastodon instance answered {last.status_code} in a way diplobot "
            "cannot read"
        )
        return PublishAmbiguous(f"{problem}: the post may exist") if sent else PublishError(problem)
    network = _network_error(exc)
    if isinstance(network, requests.ConnectTimeout):
        return PublishError(
            f"{what}: could not connect to the Mastodon instance in time (nothing was sent)"
        )
    if isinstance(network, requests.ConnectionError) and _refused(network):
        return PublishError(
            f"{what}: could not connect to the Mastodon instance (nothing was sent)"
        )
    if isinstance(network, requests.Timeout):
        return (PublishAmbiguous if sent else PublishError)(
            f"{what}: the Mastodon instance did not answer in time"
        )
    if network is not None or isinstance(exc, MastodonNetworkError):
        return (PublishAmbiguous if sent else PublishError)(
            f"{what}: the connection to the Mastodon instance was lost"
        )
    # Not a request at all (the library refused an argument): nothing was sent.
    return PublishRejected(f"{what}: Mastodon.py refused the request ({type(exc).__name__})")


def _refused(exc: requests.ConnectionError) -> bool:
    """Whether the connection was never made (refused, no route, name not found): urllib3's
    error is the ``reason`` of the ``MaxRetryError`` that requests wraps."""
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError | NameResolutionError):
            return True
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(current.args)
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return False
