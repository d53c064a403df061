"""Publish to Facebook Pages through the Graph API, over HTTP with ``requests``.

No Python SDK for the Graph API is maintained (facebook-sdk stopped at v2.x of the API), and
what a page needs is a handful of endpoints, so this module speaks them itself:

==============================================  ===========================================
``POST /{page}/feed``                           ``message`` → ``{"id": "PAGE_POST"}``
``POST /{page}/photos``                         one image (multipart ``source``) with
                                                ``caption`` and ``alt_text_custom`` →
                                                ``{"id": PHOTO, "post_id": "PAGE_POST"}``;
                                                with ``published=false``: an image for a
                                                post of several, ``{"id": PHOTO}``
``POST /{page}/feed`` + ``attached_media[n]``   a post of several images, each uploaded
                                                unpublished first
``POST /{object}/comments``                     a later part of a thread (see below)
``GET /{page}/published_posts``                 reconcile a post (``find``), and ``recent``,
                                                with the page's own comments by field
                                                expansion
``GET /{post}/comments``, ``GET /{comment}``    reconcile a later part of a thread
``DELETE /{object}``                            retract
``GET /me``                                     ``whoami``: the page the token belongs to
``GET /debug_token``                            the token's expiry (``check``)
==============================================  ===========================================

Credentials: one **page access token** per account (``DIPLOBOT_<ACCOUNT>_ACCESS_TOKEN``), and
the app's secret when the app requires ``appsecret_proof`` (``DIPLOBOT_FACEBOOK_APP_SECRET``).

What ``requests`` would get wrong, and how it is avoided here:

- It quotes the URL of a failed request in its exception's message: the token travels in the
  ``Authorization`` header, never in a URL, and the one request that must name it in its query
  (``debug_token``'s ``input_token``) is raised from a scrubbed copy, outside the ``except``
  block (not even its ``__context__`` keeps requests' exception).
- With ``trust_env`` it applies ``~/.netrc`` credentials for the host *over* our
  ``Authorization`` header: the session does not trust the environment; proxies are read once.
- ``iter_content`` blocks until its chunk is full, so a read timeout never cuts an answer that
  trickles in: the body is read with urllib3's ``read1`` and an overall deadline.

Threads: the registry gives Facebook ``threads="join"``: the pipeline joins a thread's parts
into one post, and this publisher publishes what it gets. When a part does come with
``reply_to`` (a thread too long to join), it is published as the page's comment on the part it
follows, the way pages continue a long text "in the comments"; ``find`` looks for it among
the comments of the thread's post (Facebook files a comment on a reply under the top-level
comment: one level of nesting), and ``recent`` lists the page's comments with its posts.

Errors: the Graph API answers an error with ``{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}``, mostly with status 400 whatever the cause; the ``code`` says
what it is (:func:`_from_answer`). Facebook refuses a text identical to the page's last post
(#506): :class:`PublishDuplicate`, reconciled like any ambiguous outcome.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import mimetypes
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests
import urllib3
from loguru import logger

from bot.envname import env_name
from bot.errors import (
    ConfigError,
    PublishAmbiguous,
    PublishAuthFailed,
    PublishDuplicate,
    PublishError,
    PublishRateLimited,
    PublishRejected,
)
from bot.platforms._json import dig, iso_time, loads
from bot.publish.base import MediaItem, Outgoing, Published, Receipt
from bot.publish.match import same_text
from bot.settings import Secret, ca_bundle, read_credentials, read_secret, read_timeout

if TYPE_CHECKING:
    from bot.content.model import Account
    from bot.settings import Settings

DEFAULT_API_URL = "https://graph.facebook.com/v21.0"
DEFAULT_TIMEOUT = 20.0
DEADLINE_FACTOR = 3
"""A Graph API request ends after this many times ``DIPLOBOT_FACEBOOK_TIMEOUT``, whatever
happens (an answer trickling in never trips the read timeout)."""
EXPIRY_WARNING = timedelta(days=14)
"""``accounts check`` warns when the page token (or its data access) ends sooner than this."""
RATE_LIMIT_FALLBACK = timedelta(hours=1)  # the platform limits' rolling window
RATE_LIMIT_LONGEST = timedelta(hours=24)  # the Pages business use case window
USAGE_WARNING = 90  # percent of a usage header: logged, the next calls may be throttled
FIND_PAGES = 3  # pages of 100 posts read at most when reconciling or listing
PAGE_SIZE = 100
COMMENT_FIELDS = "id,message,created_time,from,parent,attachment"
POST_FIELDS = (
    "id,message,created_time,permalink_url,attachments{media_type,subattachments},"
    f"comments.filter(stream).limit(100){{{COMMENT_FIELDS}}}"
)
NEEDED_SCOPES = ("pages_manage_posts", "pages_read_engagement")
THREAD_SCOPE = "pages_manage_engagement"  # a comment (a thread too long to join)

RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, 80001})
"""#4 application, #17 user, #32 page, #341 feed action, #613 calls within a time span,
#80001 the Pages business use case limit."""
AUTH_CODES = frozenset({10, 102, 190, 2500})
"""#190 the token is invalid or expired (its subcode says why), #102 session, #10 and #200-#299
a permission is missing, #2500 no token."""
TRANSIENT_CODES = frozenset({1, 2})  # an unknown error; the service is temporarily unavailable
DUPLICATE_CODE = 506
_SUBCODES = {
    458: "the app is not installed for this page",
    459: "the user must check in to Facebook",
    460: "the password was changed",
    463: "the token expired",
    464: "the user is unconfirmed",
    467: "the token was invalidated (log-out, or the page's roles changed)",
    492: "the user is no longer an admin of the page",
}
_ID = re.compile(r"[0-9]{1,30}(?:_[0-9]{1,30})?")


@dataclass(frozen=True)
class FacebookSettings:
    """The page token of each account, and the API's base and timeout."""

    api_url: str = DEFAULT_API_URL
    timeout: float = DEFAULT_TIMEOUT
    tokens: dict[str, Secret] = field(default_factory=dict, repr=False)
    missing: dict[str, str] = field(default_factory=dict)  # account → what to set
    ca_bundle: str | None = None
    # The app's secret, when the app requires ``appsecret_proof`` on every call.
    app_secret: Secret | None = field(default=None, repr=False)


def read_settings(settings: Settings, accounts: list[str]) -> FacebookSettings:
    """The Facebook settings of ``accounts``, read from ``settings.platform_env``.

    Raises:
        ConfigError: a token and its ``_FILE`` are both set, a file cannot be read, or
            ``DIPLOBOT_FACEBOOK_TIMEOUT`` is not a number in range.
    """
    env = settings.platform_env
    tokens, missing = read_credentials(env, accounts, "ACCESS_TOKEN")
    return FacebookSettings(
        api_url=env.get("DIPLOBOT_FACEBOOK_API_URL") or DEFAULT_API_URL,
        timeout=read_timeout(env, "DIPLOBOT_FACEBOOK_TIMEOUT", DEFAULT_TIMEOUT),
        tokens=tokens,
        missing=missing,
        ca_bundle=ca_bundle(env),
        app_secret=read_secret("DIPLOBOT_FACEBOOK_APP_SECRET", env),
    )


def publisher(
    settings: FacebookSettings, accounts: Mapping[str, Account]
) -> FacebookPublisher | None:
    """The publisher of the accounts that have a token; None when none has. ``accounts``:
    account id → ``bot.content.model.Account`` (its ``handle`` and ``page``)."""
    tokens = {a: t for a, t in settings.tokens.items() if a in accounts}
    if not tokens:
        return None
    return FacebookPublisher(
        tokens,
        {a: acct.handle for a, acct in accounts.items()},
        {a: acct.page for a, acct in accounts.items() if acct.page},
        api_url=settings.api_url,
        timeout=settings.timeout,
        ca_bundle=settings.ca_bundle,
        app_secret=settings.app_secret,
    )


@dataclass(frozen=True)
class TokenInfo:
    """What ``debug_token`` says of a page token (times are None when they never come)."""

    valid: bool
    type: str | None
    page: str | None  # ``profile_id``: the page the token acts as
    expires_at: datetime | None
    data_access_expires_at: datetime | None
    scopes: tuple[str, ...]


class _Gone(PublishRejected):
    """Facebook says the object does not exist (#100, subcode 33)."""


class GraphAPIError(Exception):
    """A Graph API error answer, as Facebook gave it (the cause of our error)."""

    def __init__(
        self,
        status: int,
        code: int | None,
        subcode: int | None,
        kind: str,
        message: str,
        trace: str,
        *,
        transient: bool = False,
    ) -> None:
        super().__init__(f"HTTP {status}, {kind} #{code}/{subcode}: {message} [{trace}]")
        self.status, self.code, self.subcode, self.kind = status, code, subcode, kind
        self.message, self.trace, self.transient = message, trace, transient

    @classmethod
    def of(cls, status: int, answer: Any, secret: str) -> GraphAPIError:
        """The error an answer holds (``{"error": {…}}``; anything else: only a status).
        ``secret``: never repeated, should Facebook quote it."""
        error = dig(answer, "error")
        error = error if isinstance(error, dict) else {}

        def number(key: str) -> int | None:
            value = error.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        message = re.sub(r"^\(#\d+\)\s*", "", str(error.get("message") or ""))
        trace = error.get("fbtrace_id")
        return cls(
            status,
            number("code"),
            number("error_subcode"),
            str(error.get("type") or ""),
            _scrub(message, secret)[:300],
            trace if isinstance(trace, str) else "",
            transient=error.get("is_transient") is True,
        )


class _Redacted(Exception):
    """The cause of an error whose library exception may name a URL carrying a token."""


class FacebookPublisher:
    """The Graph API for every page it has a token for."""

    name = "facebook"

    def __init__(
        self,
        tokens: Mapping[str, Secret],
        handles: Mapping[str, str],
        pages: Mapping[str, str],
        *,
        api_url: str = DEFAULT_API_URL,
        timeout: float = DEFAULT_TIMEOUT,
        ca_bundle: str | None = None,
        app_secret: Secret | None = None,
    ) -> None:
        self.tokens = dict(tokens)
        self.app_secret = app_secret
        self.handles = dict(handles)
        self.pages = dict(pages)  # account → page id, from accounts.yaml
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.deadline = DEADLINE_FACTOR * timeout
        self.ca_bundle = ca_bundle
        self._local = threading.local()  # one requests.Session per thread
        self._checked: set[str] = set()  # accounts whose token was matched to their page

    def __repr__(self) -> str:
        return f"FacebookPublisher(accounts={sorted(self.tokens)}, api_url={self.api_url!r})"

    # -- HTTP ------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # Not trust_env: it reads ~/.netrc on every request, and netrc credentials for the
            # host would replace our Authorization header. HTTPS_PROXY / NO_PROXY are read
            # once here instead (as x.py does); the CA bundle comes from the settings.
            session.trust_env = False
            session.proxies.update(requests.utils.get_environ_proxies(self.api_url))
            if self.ca_bundle:
                session.verify = self.ca_bundle
            self._local.session = session
        return session

    def _token(self, account: str) -> Secret:
        try:
            return self.tokens[account]
        except KeyError:
            raise ConfigError(
                f"no Facebook page token for account '{account}': set "
                f"DIPLOBOT_{env_name(account)}_ACCESS_TOKEN"
            ) from None

    def _request(
        self,
        account: str,
        method: str,
        path: str,
        *,
        sent: bool,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> Any:
        """One Graph API request as the page of ``account``; its JSON answer.

        ``sent``: whether the request, once written, may have had an effect that is public (a
        post created): then a lost answer is :class:`PublishAmbiguous`.
        """
        token = self._token(account).reveal()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        return self._send(
            method, path, headers, params, data, files, sent=sent, secret=token, account=account
        )

    def _send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        *,
        sent: bool,
        secret: str,
        account: str,
    ) -> Any:
        url = f"{self.api_url}/{path.lstrip('/')}"
        proof = ""
        if self.app_secret:  # the app requires it: HMAC-SHA256 of the token, keyed by the secret
            key = self.app_secret.reveal().encode()
            proof = hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()
            params = {**(params or {}), "appsecret_proof": proof}
        started = time.monotonic()
        lost: tuple[PublishError, _Redacted] | None = None
        try:
            with self._session().request(
                method,
                url,
                params=params,
                data=data,
                files=files,
                headers=dict(headers),
                timeout=(self.timeout, self.timeout),
                stream=True,
                allow_redirects=False,
            ) as response:
                raw = self._read(response, started, sent=sent)
        except PublishError:
            raise
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            # Raised below, outside this block: requests' exception (its message may quote
            # the URL, and with it a token) must not even be the error's __context__.
            lost = _network(exc, sent=sent), _Redacted(_scrub(_scrub(str(exc), secret), proof))
        if lost is not None:
            raise lost[0] from lost[1]
        answer = loads(raw)
        _watch_usage(response.headers)
        if not 200 <= response.status_code < 300:
            error = GraphAPIError.of(response.status_code, answer, secret)
            variable = f"DIPLOBOT_{env_name(account)}_ACCESS_TOKEN"
            raise _from_answer(error, response.headers, sent=sent, variable=variable) from error
        if not isinstance(answer, dict | list):
            problem = f"Facebook answered {response.status_code} with a body diplobot cannot read"
            raise (PublishAmbiguous if sent else PublishError)(
                f"{problem}: the post may exist" if sent else problem
            )
        return answer

    def _read(self, response: requests.Response, started: float, *, sent: bool) -> bytes:
        """The answer's body, read within the request's deadline: ``read1`` returns after one
        receive, so an answer trickling in a byte at a time (which never trips the read
        timeout, and would block ``iter_content`` until its chunk is full) is cut off."""
        chunks: list[bytes] = []
        while chunk := response.raw.read1(65536, decode_content=True):
            chunks.append(chunk)
            if time.monotonic() - started > self.deadline:
                problem = f"Facebook did not finish its answer within {self.deadline:g} s"
                raise (PublishAmbiguous if sent else PublishError)(
                    f"{problem}: the post may exist" if sent else problem
                )
        return b"".join(chunks)

    # -- identity --------------------------------------------------------------------------

    def _me(self, account: str) -> dict[str, Any]:
        answer = self._request(
            account, "GET", "me", params={"fields": "id,name,username"}, sent=False
        )
        page_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(page_id, str) or not _ID.fullmatch(page_id):
            raise PublishError("Facebook's answer to GET /me gives no id")
        return dict(answer)

    def whoami(self, account: str) -> str:
        """The page's user name (its address, facebook.com/NAME), or its id when it has
        none: what accounts.yaml's ``handle`` is for a Facebook account."""
        me = self._me(account)
        username = me.get("username")
        return username if isinstance(username, str) and username else str(me["id"])

    def _page(self, account: str) -> str:
        """The page id of ``account``: accounts.yaml's ``page``, else the token's page."""
        page = self.pages.get(account)
        if page is None:
            page = str(self._me(account)["id"])
            self.pages[account] = page
            self._checked.add(account)
        return page

    def _check_account(self, account: str) -> None:
        """Before the first post of ``account``: its token must be the token of the page
        accounts.yaml names (a user token, or another page's, would post elsewhere or fail)."""
        if account in self._checked:
            return
        page = self._page(account)
        if account in self._checked:
            return
        me = self._me(account)
        if me["id"] != page:
            who = me.get("name") or me["id"]
            raise PublishAuthFailed(
                f"the Facebook token of account '{account}' belongs to '{who}' (id {me['id']}), "
                f"not to page {page} that schedules/accounts.yaml names; nothing was sent: set "
                f"DIPLOBOT_{env_name(account)}_ACCESS_TOKEN to that page's access token"
            )
        self._checked.add(account)

    def token_info(self, account: str) -> TokenInfo:
        """The page token's validity and expiry, from ``GET /debug_token`` (the token
        inspects itself).

        Raises:
            PublishError: Facebook could not tell.
        """
        token = self._token(account).reveal()
        answer = self._send(
            "GET",
            "debug_token",
            {"Authorization": f"Bearer {token}", "Accept": "application/json"},
            {"input_token": token},
            None,
            None,
            sent=False,
            secret=token,
            account=account,
        )
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise PublishError("Facebook's answer to GET /debug_token gives no data")
        scopes = data.get("scopes")
        return TokenInfo(
            valid=data.get("is_valid") is True,
            type=data.get("type") if isinstance(data.get("type"), str) else None,
            page=str(data["profile_id"]) if data.get("profile_id") else None,
            expires_at=_epoch(data.get("expires_at")),
            data_access_expires_at=_epoch(data.get("data_access_expires_at")),
            scopes=tuple(s for s in scopes if isinstance(s, str))
            if isinstance(scopes, list)
            else (),
        )

    def check(self, account: str) -> list[str]:
        """What ``accounts check`` should say of the page token of ``account``: a warning
        when it is not a page token, lacks a permission, is invalid, or ends (or its data
        access ends) within ``EXPIRY_WARNING``.

        Raises:
            PublishError: Facebook could not tell.
        """
        info = self.token_info(account)
        variable = f"DIPLOBOT_{env_name(account)}_ACCESS_TOKEN"
        if not info.valid:
            return [f"the page token is no longer valid: set {variable} to a new one"]
        warnings: list[str] = []
        if info.type is not None and info.type != "PAGE":
            warnings.append(
                f"the token is a {info.type} token, not a PAGE token: posts need the page's "
                f"own token ({variable})"
            )
        page = self.pages.get(account)
        if page is not None and info.page is not None and info.page != page:
            warnings.append(f"the token belongs to page {info.page}, not to page {page}")
        lacking = [s for s in NEEDED_SCOPES if info.scopes and s not in info.scopes]
        if lacking:
            warnings.append(f"the token lacks the permission(s) {', '.join(lacking)}")
        if info.scopes and THREAD_SCOPE not in info.scopes:
            warnings.append(
                f"the token lacks {THREAD_SCOPE}: a thread too long to join into one post "
                "cannot continue in the page's comments"
            )
        now = datetime.now(UTC)
        for what, when, how in (
            (
                "the page token expires",
                info.expires_at,
                "a page token made from a long-lived user token, or a system user's, does not "
                "expire",
            ),
            (
                "the token's data access expires",
                info.data_access_expires_at,
                "the person who made it must use the app again, or use a system user's token",
            ),
        ):
            if when is not None and when - now < EXPIRY_WARNING:
                days = max(0, math.ceil((when - now) / timedelta(days=1)))
                warnings.append(
                    f"{what} on {when:%Y-%m-%d %H:%M} UTC (in {days} day(s)): renew "
                    f"{variable} before then ({how})"
                )
        return warnings

    # -- publishing ------------------------------------------------------------------------

    def publish(self, item: Outgoing) -> Receipt:
        self._check_account(item.account)
        page = self._page(item.account)
        if item.reply_to is not None:
            return self._comment(item)
        if len(item.media) == 1:
            media = item.media[0]
            name, data, mime = _image(media)
            form = {"caption": item.text, "published": "true"}
            if media.alt:
                form["alt_text_custom"] = media.alt
            answer = self._request(
                item.account,
                "POST",
                f"{page}/photos",
                data=form,
                files={"source": (name, data, mime)},
                sent=True,
            )
            return self._receipt(item, answer, "post_id")
        form = {"message": item.text}
        for index, media in enumerate(item.media):
            photo = self._upload(item.account, page, media)
            form[f"attached_media[{index}]"] = json.dumps({"media_fbid": photo})
        answer = self._request(item.account, "POST", f"{page}/feed", data=form, sent=True)
        return self._receipt(item, answer, "id")

    def _comment(self, item: Outgoing) -> Receipt:
        """A later part of a thread: the page's comment on the part it follows (one image at
        most, as a comment holds one)."""
        if len(item.media) > 1:
            raise PublishRejected(
                "a Facebook comment holds one image: a later part of a thread has "
                f"{len(item.media)}"
            )
        form = {"message": item.text}
        if item.media:
            page = self._page(item.account)
            form["attachment_id"] = self._upload(item.account, page, item.media[0])
        answer = self._request(
            item.account, "POST", f"{item.reply_to_id}/comments", data=form, sent=True
        )
        return self._receipt(item, answer, "id")

    def _receipt(self, item: Outgoing, answer: Any, key: str) -> Receipt:
        remote_id = answer.get(key) if isinstance(answer, dict) else None
        if not isinstance(remote_id, str) or not _ID.fullmatch(remote_id):
            # Facebook accepted the request: the post may well exist. Only the page can tell.
            raise PublishAmbiguous("Facebook accepted the post but its answer gives no post id")
        return item.receipt(remote_id, _url(remote_id))

    def _upload(self, account: str, page: str, media: MediaItem) -> str:
        """An unpublished photo of the page (nothing public yet: a failure is never
        ambiguous), with its alt text; its id."""
        name, data, mime = _image(media)
        form = {"published": "false", "temporary": "true"}
        if media.alt:
            form["alt_text_custom"] = media.alt
        try:
            answer = self._request(
                account,
                "POST",
                f"{page}/photos",
                data=form,
                files={"source": (name, data, mime)},
                sent=False,
            )
        except PublishRateLimited:
            raise
        except PublishError as exc:
            raise type(exc)(f"uploading image {name} to Facebook failed: {exc}") from exc
        photo = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(photo, str) or not _ID.fullmatch(photo):
            raise PublishError(f"Facebook's answer to the upload of {name} gives no photo id")
        return photo

    # -- reading ---------------------------------------------------------------------------

    def find(self, item: Outgoing, since: datetime) -> Receipt | None:
        """The page's post (or, for a later part, comment) that is this delivery, published
        after ``since``: the same text, as many images, replying to the same post.

        A first part is looked for among the page's posts since ``since``; a later part among
        the comments of its thread's first post (which may be older than ``since``)."""
        try:
            if item.reply_to is None:
                expected: str | None = None
                candidates = self._read_page(item.account, since)
            else:
                expected = self._parent_of_reply(item.account, item.reply_to)
                candidates = self._read_comments(item.account, item.reply_to.thread_root, since)
            for seen in candidates:
                if (
                    seen.reply_to == expected
                    and seen.media == len(item.media)
                    and same_text(seen.text, item.text)
                ):
                    return item.receipt(seen.remote_id, seen.url or _url(seen.remote_id))
        except _Gone:
            return None  # the thread's post (or the part answered) is gone: so is the comment
        except PublishError as exc:
            raise self._unreadable(item.account, exc) from exc
        return None

    def _parent_of_reply(self, account: str, previous: Receipt) -> str:
        """What Facebook records as the object a comment on ``previous`` answers: the post
        itself, a top-level comment, or, for a comment on a reply, that reply's top-level
        comment (Facebook nests comments one level deep)."""
        if previous.root is None:  # the thread's post
            return previous.remote_id
        answer = self._request(
            account, "GET", previous.remote_id, params={"fields": "id,parent"}, sent=False
        )
        parent = dig(answer, "parent", "id")
        return parent if isinstance(parent, str) and _ID.fullmatch(parent) else previous.remote_id

    def _read_comments(self, account: str, post: str, since: datetime) -> Iterator[Published]:
        """The page's comments under ``post`` since ``since``, newest first."""
        page = self._page(account)
        params = {
            "fields": COMMENT_FIELDS,
            "filter": "stream",
            "order": "reverse_chronological",
            "limit": str(PAGE_SIZE),
        }
        for _ in range(FIND_PAGES):
            answer = self._request(account, "GET", f"{post}/comments", params=params, sent=False)
            data = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(data, list):
                raise PublishError("Facebook's comments answer is not what its API documents")
            for comment in data:
                seen = _comment_seen(comment, page, post)
                if seen is None:
                    continue
                if seen.created_at is not None and seen.created_at < _second(since):
                    return  # newest first: the rest is older still
                yield seen
            after = dig(answer, "paging", "cursors", "after")
            if not isinstance(after, str) or not dig(answer, "paging", "next"):
                return
            params = {**params, "after": after}

    def recent(self, account: str, since: datetime) -> list[Published]:
        """The page's posts and its own comments on them since ``since``, newest first (at
        most ``FIND_PAGES`` pages of posts: the most recent ones)."""
        try:
            found = list(self._read_page(account, since))
        except PublishError as exc:
            raise self._unreadable(account, exc) from exc
        # Each post after its comments (they are newer), then a stable sort by time: Facebook
        # gives times to the second, and its own order wins within one.
        ordered: list[Published] = []
        block: list[Published] = []
        for seen in found:
            if seen.reply_to is None and block:
                ordered += [*reversed(block[1:]), block[0]]
                block = []
            block.append(seen)
        if block:
            ordered += [*reversed(block[1:]), block[0]]
        found = sorted(ordered, key=lambda s: s.created_at or since, reverse=True)
        return found

    def _read_page(self, account: str, since: datetime) -> Iterator[Published]:
        """Posts of the page since ``since``, newest first, each followed by the page's
        comments on it."""
        page = self._page(account)
        params = {
            "fields": POST_FIELDS,
            "limit": str(PAGE_SIZE),
            "since": str(int(since.timestamp())),
        }
        for _ in range(FIND_PAGES):
            answer = self._request(
                account, "GET", f"{page}/published_posts", params=params, sent=False
            )
            data = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(data, list):
                raise PublishError("Facebook's feed answer is not what its API documents")
            for post in data:
                yield from _post_and_comments(post, page, since)
            after = dig(answer, "paging", "cursors", "after")
            if not isinstance(after, str) or not dig(answer, "paging", "next"):
                return
            params = {**params, "after": after}

    def _unreadable(self, account: str, exc: PublishError) -> PublishError:
        return PublishError(
            f"reading Facebook page {self.handles.get(account, account)}'s posts failed: {exc}"
        )

    def delete(self, account: str, remote_id: str) -> None:
        if not _ID.fullmatch(remote_id):
            raise PublishError(f"'{remote_id}' is not a Facebook post id")
        try:
            answer = self._request(account, "DELETE", remote_id, sent=False)
        except _Gone:
            return  # already deleted
        if not (isinstance(answer, dict) and answer.get("success") is True):
            raise PublishError(f"Facebook did not confirm the deletion of {_url(remote_id)}")


# -- answers --------------------------------------------------------------------------------


def _post_and_comments(post: Any, page: str, since: datetime) -> Iterator[Published]:
    """One post of the feed, then the page's comments on it (after ``since``). A post that
    cannot be read is an error, not a miss: a miss would send the post again."""
    if not isinstance(post, dict):
        raise PublishError("Facebook's feed answer is not what its API documents")
    post_id = post.get("id")
    if not isinstance(post_id, str) or not _ID.fullmatch(post_id):
        raise PublishError("Facebook's feed answer holds a post without an id")
    message = post.get("message")
    url = post.get("permalink_url")
    yield Published(
        post_id,
        message if isinstance(message, str) else "",
        None,
        _photos(post.get("attachments")),
        iso_time(post.get("created_time")),
        url if isinstance(url, str) else None,
    )
    comments = dig(post, "comments", "data") or []
    if not isinstance(comments, list):
        raise PublishError("Facebook's feed answer holds comments it cannot read")
    for comment in comments:
        seen = _comment_seen(comment, page, post_id)
        if seen is not None and (seen.created_at is None or seen.created_at >= _second(since)):
            yield seen


def _comment_seen(comment: Any, page: str, post_id: str) -> Published | None:
    """One of the page's comments under ``post_id`` (None: someone else's)."""
    if not isinstance(comment, dict) or dig(comment, "from", "id") != page:
        return None  # someone else's comment (or one Facebook does not say whose): not ours
    comment_id = comment.get("id")
    if not isinstance(comment_id, str) or not _ID.fullmatch(comment_id):
        raise PublishError("Facebook's answer holds a comment without an id")
    parent = dig(comment, "parent", "id")
    text = comment.get("message")
    attachment = comment.get("attachment")
    photo = isinstance(attachment, dict) and attachment.get("type") == "photo"
    return Published(
        comment_id,
        text if isinstance(text, str) else "",
        parent if isinstance(parent, str) else post_id,
        1 if photo else 0,
        iso_time(comment.get("created_time")),
        _url(comment_id),
    )


def _photos(attachments: Any) -> int:
    """How many images a post carries: one photo, or an album's photos (a link preview is
    no image of ours)."""
    count = 0
    for attachment in dig(attachments, "data") or []:
        if not isinstance(attachment, dict):
            continue
        subs = dig(attachment, "subattachments", "data")
        if isinstance(subs, list) and subs:
            count += sum(1 for s in subs if isinstance(s, dict) and s.get("media_type") == "photo")
        elif attachment.get("media_type") == "photo":
            count += 1
    return count


def _image(media: MediaItem) -> tuple[str, bytes, str]:
    name = media.path.name
    try:
        data = media.data if media.data is not None else media.path.read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PublishRejected(f"cannot read image {name}: {reason}") from exc
    return name, data, mimetypes.guess_type(name)[0] or "application/octet-stream"


def _url(remote_id: str) -> str:
    """The post's address (``PAGE_POST`` ids open as facebook.com/PAGE_POST)."""
    return f"https://www.facebook.com/{remote_id}"


def _epoch(value: Any) -> datetime | None:
    """A ``debug_token`` time: epoch seconds; 0 (or nothing) means never."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _second(moment: datetime) -> datetime:
    """``moment`` to the second below: Facebook's times have no fraction, so a comment made
    0.3 s after ``since`` reads as made before it."""
    return moment.replace(microsecond=0)


def _scrub(message: str, secret: str) -> str:
    return message.replace(secret, "***") if secret else message


def _network(exc: Exception, *, sent: bool) -> PublishError:
    """Map a ``requests`` (or, while reading the body, ``urllib3``) failure to ours, never
    with its message: it may hold the URL."""
    if isinstance(exc, requests.ConnectTimeout):
        return PublishError("could not connect to Facebook in time (nothing was sent)")
    if isinstance(exc, requests.ConnectionError) and _never_connected(exc):
        return PublishError("could not connect to Facebook (nothing was sent)")
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError):
        return (PublishAmbiguous if sent else PublishError)("Facebook did not answer in time")
    if isinstance(
        exc,
        requests.ConnectionError
        | requests.exceptions.ChunkedEncodingError
        | urllib3.exceptions.ProtocolError,
    ):
        return (PublishAmbiguous if sent else PublishError)("the connection to Facebook was lost")
    return (PublishAmbiguous if sent else PublishError)(
        f"unexpected error talking to Facebook ({type(exc).__name__})"
    )


def _never_connected(exc: requests.ConnectionError) -> bool:
    """Whether the connection was never made (refused, no route, name not resolved)."""
    from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | NameResolutionError)


def _usage(headers: Mapping[str, str]) -> tuple[int, int]:
    """From the usage headers: the highest usage percentage, and the longest
    ``estimated_time_to_regain_access`` (minutes)."""
    highest, regain = 0, 0

    def read(entry: Any) -> None:
        nonlocal highest, regain
        if not isinstance(entry, dict):
            return
        for key in ("call_count", "total_cputime", "total_time"):
            value = entry.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                highest = max(highest, int(value))
        value = entry.get("estimated_time_to_regain_access")
        if isinstance(value, int | float) and not isinstance(value, bool):
            regain = max(regain, int(value))

    for name in ("X-App-Usage", "X-Page-Usage", "X-Ad-Account-Usage"):
        read(loads(headers.get(name, "").encode()))
    business = loads(headers.get("X-Business-Use-Case-Usage", "").encode())
    if isinstance(business, dict):
        for entries in business.values():
            for entry in entries if isinstance(entries, list) else [entries]:
                read(entry)
    return highest, regain


def _watch_usage(headers: Mapping[str, str]) -> None:
    """Log when a usage header says a limit is near: Facebook refuses calls past 100 %."""
    highest, regain = _usage(headers)
    if highest >= USAGE_WARNING:
        logger.bind(platform="facebook", usage_percent=highest, regain_minutes=regain).warning(
            "facebook.usage_high"
        )


def _from_answer(
    error: GraphAPIError, headers: Mapping[str, str], *, sent: bool, variable: str
) -> PublishError:
    """The error a Graph API error answer means (by its ``code``, then its status);
    ``sent``: the request may have had an effect; ``variable``: the token's variable."""
    status, code, subcode = error.status, error.code, error.subcode
    where = f" [fbtrace_id {error.trace}]" if error.trace else ""
    said = f"#{code} {error.message}".strip() if code is not None else f"HTTP {status}"
    if code == DUPLICATE_CODE:
        return PublishDuplicate(f"Facebook refused the text as a duplicate of the last post{where}")
    if code in RATE_LIMIT_CODES:
        now = datetime.now(UTC)
        _highest, regain = _usage(headers)
        wait = timedelta(minutes=regain) if regain > 0 else RATE_LIMIT_FALLBACK
        retry_at = now + min(wait, RATE_LIMIT_LONGEST)
        return PublishRateLimited(f"Facebook rate limit reached ({said}){where}", retry_at)
    if "appsecret_proof" in error.message:
        return PublishAuthFailed(
            f"Facebook requires appsecret_proof ({said}){where}: set "
            "DIPLOBOT_FACEBOOK_APP_SECRET to the app's secret (the app that made the page tokens)"
        )
    if code in AUTH_CODES or (code is not None and 200 <= code <= 299) or status == 401:
        why = _SUBCODES.get(subcode or 0)
        detail = f"{said}; {why}" if why else said
        return PublishAuthFailed(
            f"Facebook refused the page token ({detail}){where}: check {variable} and the "
            "page's permissions (pages_manage_posts, pages_read_engagement)"
        )
    if code in TRANSIENT_CODES or status >= 500 or error.transient:
        if sent:
            return PublishAmbiguous(
                f"Facebook answered {status} ({said}): the post may or may not exist{where}"
            )
        return PublishError(f"Facebook answered {status} ({said}): try again later{where}")
    if 400 <= status < 500:
        # A missing object (#100, subcode 33): for a deletion, it is already gone.
        kind = _Gone if code == 100 and subcode == 33 else PublishRejected
        return kind(f"Facebook refused the request ({said}){where}")
    return PublishError(f"Facebook answered {status} ({said}){where}")
