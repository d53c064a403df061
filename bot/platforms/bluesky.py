"""Publish to Bluesky through the ``atproto`` SDK (``Client``, XRPC over httpx), one account's
session each, behind the synchronous publisher interface.

How a post goes out:

- **Never twice.** The record key (``rkey``) of a delivery's post is derived from
  :attr:`Outgoing.key` (``post#part@account``, the same for every attempt): :func:`tid_for`
  hashes it into a valid TID. ``com.atproto.repo.createRecord`` with that ``rkey`` cannot make
  a second post: the repository already holds the key. bsky.social answers such a create
  ``500 InternalServerError`` (bluesky-social/atproto#3718; newer PDSs an explicit error): on a
  refused create the publisher reads the key back (``getRecord``), and a record there is this
  delivery's post, POSTED once. ``find`` is ``getRecord`` on that key, plus a check of its text
  and of the post it replies to.
- **Rich text.** Links, hashtags (and cashtags) are found as the official app finds them (the
  SDK's port of ``detectFacets``), mentions are resolved handle → DID
  (``com.atproto.identity.resolveHandle``; a handle that does not resolve stays plain text).
  Facets are given in UTF-8 byte offsets, as the lexicon requires.
- ``langs`` is the post's language (BCP 47), images go in ``app.bsky.embed.images`` with their
  alt text and ``aspectRatio``; an image over the blob limit (976,560 bytes) is recompressed
  first (``bot/publish/resize.py``), not refused.
- A reply names its thread's **root and parent** (``reply.root``, ``reply.parent``: strong
  references, URI and CID), from the receipts of the earlier parts.
- **Sessions.** ``createSession`` is rate-limited (30 per 5 minutes, 300 a day per account):
  the session (``export_session_string``) is saved under the state folder
  (``<state>/bluesky/<account>.session``, mode 0600) whenever it is created or refreshed, and
  reused by the next process. The SDK refreshes the access token before it expires; a token the
  PDS still calls expired or invalid is refreshed (or, when the refresh token is dead too, the
  account logs in again with its app password) and the request made once more.

Every outcome is a :class:`Receipt` or a :class:`PublishError`: a create that the PDS may have
stored (a lost connection, a timeout, a 5xx with nothing at the key) is
:class:`PublishAmbiguous`; ``find`` then tells.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from loguru import logger

from bot.envname import env_name
from bot.errors import (
    ConfigError,
    PublishAmbiguous,
    PublishAuthFailed,
    PublishError,
    PublishRateLimited,
    PublishRejected,
)
from bot.platforms._json import iso_time
from bot.publish.base import MediaItem, Outgoing, Published, Receipt
from bot.publish.match import same_text
from bot.settings import Secret, ca_bundle, read_credentials, read_timeout

if TYPE_CHECKING:
    from bot.content.model import Account
    from bot.settings import Settings

DEFAULT_PDS_URL = "https://bsky.social"
COLLECTION = "app.bsky.feed.post"
REPOSTS = "app.bsky.feed.repost"
BLOB_LIMIT = 976_560  # app.bsky.embed.images: an image blob's maxSize
RATE_LIMIT_FALLBACK = timedelta(minutes=5)  # when a 429 gives no readable reset
RATE_LIMIT_LONGEST = timedelta(hours=24)  # createSession's daily window: no reset is later
READ_PAGES = 10  # listRecords pages read at most (100 records each) by recent and find
DEADLINE_FACTOR = 3
"""A call to the PDS ends after this many times ``DIPLOBOT_BLUESKY_TIMEOUT``, whatever
happens: an answer trickling one byte at a time never trips httpx's read timeout."""
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_TID_EPOCH_US = 1_672_531_200_000_000  # 2023-01-01T00:00:00Z, in microseconds
_TID_SPAN_BITS = 45  # derived timestamps fall within ~1.1 years from that epoch
_SESSION_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
_AUTH_ERRORS = frozenset(
    {"AuthenticationRequired", "AccountTakedown", "AccountDeactivated", "AuthFactorTokenRequired"}
)

T = TypeVar("T")


def tid_for(key: str) -> str:
    """The TID record key of the delivery ``key``: always the same for the same key, a valid
    TID (13 characters of base32-sortable, top bit 0), 55 bits of SHA-256 of the key.

    Its timestamp part lies in 2023, before any post diplobot makes: a derived key never sorts
    among the keys a PDS gives (listRecords' order is not time order; ``recent`` sorts by
    ``createdAt``), and a reader that trusts a TID's time sees an old one, never a future one.
    """
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    timestamp = _TID_EPOCH_US + (digest >> (64 - _TID_SPAN_BITS))
    clock = digest & 0x3FF
    value = (timestamp << 10) | clock
    return "".join(_TID_ALPHABET[(value >> (5 * (12 - i))) & 31] for i in range(13))


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlueskySettings:
    """Bluesky's settings for the accounts on it (``read_settings``)."""

    pds_url: str = DEFAULT_PDS_URL
    timeout: float = 20.0
    passwords: dict[str, Secret] = field(default_factory=dict, repr=False)
    missing: dict[str, str] = field(default_factory=dict)  # account → what to set
    session_dir: Path | None = None  # where sessions are kept; None: not kept
    ca_bundle: str | None = None  # an institution's own CA (REQUESTS_CA_BUNDLE), as for X


def read_settings(settings: Settings, accounts: list[str]) -> BlueskySettings:
    """Each account's app password (``DIPLOBOT_<ACCOUNT>_APP_PASSWORD``, or ``…_FILE``), the
    PDS (``DIPLOBOT_BLUESKY_PDS_URL``), the timeout (``DIPLOBOT_BLUESKY_TIMEOUT``) and where
    sessions are kept (``DIPLOBOT_BLUESKY_SESSION_DIR``, default ``bluesky/`` beside the state).

    Raises:
        ConfigError: a variable and its ``_FILE`` are both set, a file cannot be read, or the
            timeout is not a number from 0.1 to 600.
    """
    env = settings.platform_env
    passwords, missing = read_credentials(env, accounts, "APP_PASSWORD")
    return BlueskySettings(
        pds_url=(env.get("DIPLOBOT_BLUESKY_PDS_URL") or DEFAULT_PDS_URL).rstrip("/"),
        timeout=read_timeout(env, "DIPLOBOT_BLUESKY_TIMEOUT"),
        passwords=passwords,
        missing=missing,
        session_dir=_session_dir(settings),
        ca_bundle=ca_bundle(env),
    )


def _session_dir(settings: Settings) -> Path:
    chosen = settings.platform_env.get("DIPLOBOT_BLUESKY_SESSION_DIR")
    if chosen:
        return Path(chosen)
    from bot.state.db import state_dir, state_url

    root = Path(settings.root)
    return state_dir(state_url(root, settings.state), root, settings.state_dir) / "bluesky"


def publisher(
    settings: BlueskySettings, accounts: Mapping[str, Account]
) -> BlueskyPublisher | None:
    """The publisher of the accounts that have an app password; None when none has."""
    if not settings.passwords:
        return None
    return BlueskyPublisher(
        settings.passwords,
        {a: (acct.handle, acct.did) for a, acct in accounts.items()},
        pds_url=settings.pds_url,
        timeout=settings.timeout,
        session_dir=settings.session_dir,
        ca_bundle=settings.ca_bundle,
    )


# -- the publisher --------------------------------------------------------------------------


@dataclass
class _Account:
    """One account's client, once logged in, and what its session says."""

    client: Any  # atproto_client.Client
    did: str
    handle: str
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class _Post:
    """A post record as it is on the PDS."""

    uri: str
    cid: str
    text: str
    parent: str | None  # the URI it replies to
    root: str | None  # its thread's root URI
    media: int
    created_at: datetime | None


class BlueskyPublisher:
    """Bluesky (an atproto PDS) for every account it has an app password for."""

    name = "bluesky"

    def __init__(
        self,
        passwords: Mapping[str, Secret],
        identities: Mapping[str, tuple[str, str | None]],
        *,
        pds_url: str = DEFAULT_PDS_URL,
        timeout: float = 20.0,
        session_dir: Path | None = None,
        ca_bundle: str | None = None,
    ) -> None:
        self.passwords = dict(passwords)
        self.identities = dict(identities)  # account → (handle, did from accounts.yaml)
        self.pds_url = pds_url.rstrip("/")
        self.timeout = timeout
        self.deadline = DEADLINE_FACTOR * timeout
        self.session_dir = session_dir
        self.ca_bundle = ca_bundle
        self._accounts: dict[str, _Account] = {}
        self._lock = threading.Lock()
        self._cids: dict[str, str] = {}  # URI → CID of the posts this process made or read
        self._checked: set[str] = set()
        # handle → DID (None: it does not resolve), for this process: a handle that moves
        # to another DID is rare, and a restart forgets it.
        self._dids: dict[str, str | None] = {}

    def __repr__(self) -> str:
        return f"BlueskyPublisher(pds_url={self.pds_url!r}, accounts={sorted(self.passwords)})"

    # -- sessions --------------------------------------------------------------------------

    def _account(self, account: str) -> _Account:
        with self._lock:
            found = self._accounts.get(account)
            if found is None:
                found = self._login(account)
                self._accounts[account] = found
            return found

    def _password(self, account: str) -> Secret:
        try:
            return self.passwords[account]
        except KeyError:
            raise ConfigError(
                f"Bluesky credentials for account '{account}' missing: set "
                f"DIPLOBOT_{env_name(account)}_APP_PASSWORD"
            ) from None

    def _identifier(self, account: str) -> str:
        handle, did = self.identities.get(account, (account, None))
        return did or handle.lstrip("@")

    def _session_path(self, account: str) -> Path | None:
        if self.session_dir is None:
            return None
        return self.session_dir / f"{env_name(account).lower()}.session"

    def _login(self, account: str) -> _Account:
        """A client for ``account``: its saved session when there is one, else a new one
        (``createSession`` with the app password)."""
        from atproto_client import Client  # type: ignore[import-untyped]
        from atproto_client.request import Request  # type: ignore[import-untyped]

        password = self._password(account)

        def request() -> Any:
            if self.ca_bundle and self.pds_url.startswith("https:"):
                context = ssl.create_default_context(cafile=self.ca_bundle)
                return Request(timeout=self.timeout, verify=context)
            return Request(timeout=self.timeout)

        client = Client(base_url=self.pds_url, request=request())
        path = self._session_path(account)
        owner = (self.pds_url, self._identifier(account))
        saved = _read_session(path, owner)
        if saved:
            try:
                client.login(session_string=saved, fetch_bsky_profile=False)
            except Exception as exc:  # a damaged file: log in again
                logger.warning(
                    "the saved Bluesky session of account '{}' cannot be used ({}): "
                    "logging in again",
                    account,
                    type(exc).__name__,
                )
                client = Client(base_url=self.pds_url, request=request())
                saved = None
        if not saved:
            try:
                self._bounded(
                    lambda: client.login(
                        self._identifier(account), password.reveal(), fetch_bsky_profile=False
                    )
                )
            except Exception as exc:
                raise self._failure(exc, sent=False, login=True) from exc
        client.on_session_change(
            lambda _event, session: _write_session(path, owner, session.export())
        )
        if not saved:
            _write_session(path, owner, client.export_session_string())
        session = client._session
        return _Account(client, str(session.did), str(session.handle))

    def _relogin(self, account: str, held: _Account) -> None:
        """The PDS refused the session: refresh it, or log in again when that fails too."""
        client = held.client

        def refresh() -> None:
            with client._refresh_lock:
                client._refresh_and_set_session()

        try:
            self._bounded(refresh)
            return
        except Exception as exc:
            if not _ended(exc):
                raise self._failure(exc, sent=False) from exc
        # Another process on the same state (the service and a `post-now`) may have refreshed
        # first: refresh tokens are single-use, so its session, saved, is the live one.
        path = self._session_path(account)
        saved = _read_session(path, (self.pds_url, self._identifier(account)))
        if saved and saved != client.export_session_string():
            try:
                client.login(session_string=saved, fetch_bsky_profile=False)
                self._bounded(client.com.atproto.server.get_session)
                return
            except Exception as exc:
                if not _ended(exc):
                    raise self._failure(exc, sent=False) from exc
        logger.info("the Bluesky session of account '{}' has ended: logging in again", account)
        password = self._password(account)
        try:
            self._bounded(
                lambda: client.login(
                    self._identifier(account), password.reveal(), fetch_bsky_profile=False
                )
            )
        except Exception as exc:
            raise self._failure(exc, sent=False, login=True) from exc

    def _bounded(self, work: Callable[[], T]) -> T:
        """``work()``, given at most ``deadline`` seconds: run on a thread of its own, which
        is left behind (it ends with its socket) when the deadline passes.

        Raises:
            _Deadline: the deadline passed; whatever ``work`` raised, otherwise.
        """
        outcome: list[Any] = []
        done = threading.Event()
        context = contextvars.copy_context()  # the caller's log context

        def run() -> None:
            try:
                outcome.append((True, context.run(work)))
            except BaseException as exc:
                outcome.append((False, exc))
            finally:
                done.set()

        threading.Thread(target=run, name="bluesky-call", daemon=True).start()
        if not done.wait(self.deadline):
            raise _Deadline(self.deadline)
        ok, value = outcome[0]
        if not ok:
            raise value
        result: T = value
        return result

    def _call(self, account: str, call: Callable[[Any, _Account], T], *, sent: bool) -> T:
        """One XRPC call for ``account``; a session the PDS calls expired or invalid is renewed
        and the call made once more (the PDS did nothing with a request it did not
        authenticate). Failures become ours (``sent``: the call may have had an effect)."""
        held = self._account(account)
        for attempt in (1, 2):
            try:
                return self._bounded(lambda: call(held.client, held))
            except PublishError:
                raise
            except Exception as exc:
                if attempt == 1 and _xrpc_error(exc) in _SESSION_ERRORS:
                    with held.lock:
                        self._relogin(account, held)
                    continue
                raise self._failure(exc, sent=sent) from exc
        raise AssertionError("unreachable")

    # -- publishing ------------------------------------------------------------------------

    def publish(self, item: Outgoing) -> Receipt:
        held = self._account(item.account)
        self._check_account(item.account, held)
        from atproto_client import models

        text = item.text
        facets = self._facets(item.account, text)
        embed = self._embed(item.account, item.media)
        reply = self._reply_ref(item.account, item.reply_to) if item.reply_to else None
        record = models.AppBskyFeedPost.Record(
            text=text,
            created_at=_now_iso(),
            langs=[item.lang] if item.lang else None,
            facets=facets or None,
            embed=embed,
            reply=reply,
        )
        rkey = tid_for(item.key) if item.key else None
        data = models.ComAtprotoRepoCreateRecord.Data(
            repo=held.did, collection=COLLECTION, record=record, rkey=rkey
        )

        created, existing = self._create_once(
            item.account, data, rkey, lambda key: self._get(item.account, held.did, key, quiet=True)
        )
        if existing is not None:
            if not same_text(existing.text, text):
                logger.warning(
                    "account '{}': the Bluesky post at this delivery's key ({}) has another "
                    "text (edited since it was sent?): it is the delivery's post",
                    item.account,
                    existing.uri,
                )
            return item.receipt(existing.uri, self._url(item.account, existing.uri))
        uri, cid = getattr(created, "uri", None), getattr(created, "cid", None)
        if not isinstance(uri, str) or not isinstance(cid, str) or not uri.startswith("at://"):
            raise PublishAmbiguous("Bluesky accepted the post but its answer gives no record URI")
        self._cids[uri] = cid
        return item.receipt(uri, self._url(item.account, uri))

    # -- reposts (amplification) -----------------------------------------------------------

    def repost(self, item: Outgoing) -> Receipt:
        """An ``app.bsky.feed.repost`` record whose ``subject`` is the original (URI and
        CID, read with ``getRecord`` when not known here), at the record key derived from the
        delivery's key, as a post's: a retry cannot make a second repost (the key is taken;
        the record there is read back). The receipt is the repost record's URI."""
        original = item.repost_of
        if original is None:
            raise PublishError("a repost without its original: a defect to report")
        held = self._account(item.account)
        self._check_account(item.account, held)
        from atproto_client import models

        subject = models.ComAtprotoRepoStrongRef.Main(
            uri=original.remote_id, cid=self._cid_of(item.account, original.remote_id)
        )
        record = models.AppBskyFeedRepost.Record(subject=subject, created_at=_now_iso())
        rkey = tid_for(item.key) if item.key else None
        data = models.ComAtprotoRepoCreateRecord.Data(
            repo=held.did, collection=REPOSTS, record=record, rkey=rkey
        )

        created, existing = self._create_once(
            item.account,
            data,
            rkey,
            lambda key: self._repost_at(item.account, held.did, key, quiet=True),
        )
        if existing is not None:
            return Receipt(existing, original.url)
        uri = getattr(created, "uri", None)
        if not isinstance(uri, str) or not uri.startswith("at://"):
            raise PublishAmbiguous("Bluesky accepted the repost but its answer gives no URI")
        return Receipt(uri, original.url)

    def find_repost(self, item: Outgoing, since: datetime) -> Receipt | None:
        """The repost record at this delivery's key (``getRecord``), when it reposts the
        original; without a key, the account's repost records."""
        original = item.repost_of
        if original is None:
            return None
        try:
            held = self._account(item.account)
            if item.key:
                found = self._repost_at(item.account, held.did, tid_for(item.key))
                return Receipt(found, original.url) if found is not None else None
            for uri, subject in self._repost_records(item.account):
                if subject == original.remote_id:
                    return Receipt(uri, original.url)
            return None
        except PublishError as exc:
            raise self._unreadable(item.account, exc) from exc

    def unrepost(self, account: str, remote_id: str, original_id: str) -> None:
        """``deleteRecord`` of the repost record; one already gone is no error."""
        from atproto_client import models

        repo, collection, rkey = _split_uri(remote_id)
        if collection != REPOSTS:
            raise PublishError(f"{remote_id} is not a Bluesky repost: a defect to report")
        data = models.ComAtprotoRepoDeleteRecord.Data(repo=repo, collection=collection, rkey=rkey)

        def delete(client: Any, _held: _Account) -> Any:
            return client.com.atproto.repo.delete_record(data)

        try:
            self._call(account, delete, sent=False)
        except PublishRejected as exc:
            if _xrpc_error(exc.__cause__) != "RecordNotFound":
                raise
        if self._repost_at(account, repo, rkey) is not None:
            raise PublishError(f"Bluesky did not undo the repost {remote_id}: check it")

    def _cid_of(self, account: str, uri: str) -> str:
        """The CID of the post ``uri``, read from its repository each time: a PDS takes a
        repost of any reference, even of a post deleted since (the app then shows nothing),
        so the original is checked to be there.

        Raises:
            PublishRejected: the post is not on Bluesky any more.
        """
        repo, _, rkey = _split_uri(uri)
        found = self._get(account, repo, rkey)
        if found is None:
            raise PublishRejected(f"the post to repost ({uri}) is not on Bluesky any more")
        return found.cid

    def _create_once(
        self, account: str, data: Any, rkey: str | None, at_key: Callable[[str], T | None]
    ) -> tuple[Any, T | None]:
        """``createRecord`` of ``data`` at the delivery's record key ``rkey``: (the answer,
        None); or, when the answer is lost or says the key may be taken — bsky.social answers
        500 to a create whose key exists, newer PDSs an explicit error — (None, the record
        already there, read with ``at_key``): a record at this delivery's key is this
        delivery's. Raises the create's error when there is no such record."""

        def create(client: Any, _held: _Account) -> Any:
            return client.com.atproto.repo.create_record(data)

        try:
            return self._call(account, create, sent=True), None
        except (PublishAmbiguous, PublishRejected) as exc:
            if rkey is None or not _maybe_exists(exc):
                raise
            existing = at_key(rkey)
            if existing is None:
                raise
            return None, existing

    def _repost_at(self, account: str, repo: str, rkey: str, *, quiet: bool = False) -> str | None:
        """The URI of the repost record at ``rkey`` in ``repo``; None when there is none."""
        from atproto_client import models

        params = models.ComAtprotoRepoGetRecord.Params(repo=repo, collection=REPOSTS, rkey=rkey)

        def get(client: Any, _held: _Account) -> Any:
            return client.invoke_query("com.atproto.repo.getRecord", params=params).content

        try:
            body = self._call(account, get, sent=False)
        except PublishRejected as exc:
            if _xrpc_error(exc.__cause__) == "RecordNotFound" or quiet:
                return None
            raise
        except PublishError:
            if quiet:
                return None
            raise
        uri = body.get("uri") if isinstance(body, dict) else None
        if not isinstance(uri, str):
            raise PublishError(_UNREADABLE)
        return uri

    def _repost_records(self, account: str) -> list[tuple[str, str]]:
        """The account's repost records (one page of 100): (its URI, the subject's URI)."""
        from atproto_client import models

        held = self._account(account)
        params = models.ComAtprotoRepoListRecords.Params(
            repo=held.did, collection=REPOSTS, limit=100
        )

        def page(client: Any, _held: _Account) -> Any:
            return client.invoke_query("com.atproto.repo.listRecords", params=params).content

        body = self._call(account, page, sent=False)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise PublishError("Bluesky's listRecords answer is not what its lexicon says")
        found = []
        for record in records:
            uri = record.get("uri") if isinstance(record, dict) else None
            value = record.get("value") if isinstance(record, dict) else None
            subject = value.get("subject") if isinstance(value, dict) else None
            target = subject.get("uri") if isinstance(subject, dict) else None
            if isinstance(uri, str) and isinstance(target, str):
                found.append((uri, target))
        return found

    def _check_account(self, account: str, held: _Account) -> None:
        """Before the first post: the session must be the account accounts.yaml names."""
        if account in self._checked:
            return
        handle, did = self.identities.get(account, (None, None))
        if did and did != held.did:
            raise PublishAuthFailed(
                f"the Bluesky app password of account '{account}' belongs to {held.did}, but "
                f"schedules/accounts.yaml gives it the DID {did}; nothing was sent"
            )
        if handle and not did and handle.lstrip("@").lower() != held.handle.lower():
            raise PublishAuthFailed(
                f"the Bluesky app password of account '{account}' belongs to @{held.handle}, "
                f"but schedules/accounts.yaml gives it the handle @{handle.lstrip('@')}; "
                "nothing was sent"
            )
        self._checked.add(account)

    def _facets(self, account: str, text: str) -> list[Any]:
        """Links, tags and resolved mentions, at UTF-8 byte offsets, in text order."""
        from atproto_client import models
        from atproto_client.utils import facet_detection  # type: ignore[import-untyped]

        facets: list[Any] = list(facet_detection.detect_facets(text))
        for mention in facet_detection.detect_mentions(text):
            handle = mention.handle.lower()
            if handle not in self._dids:
                self._dids[handle] = self._resolve(account, handle)
            did = self._dids[handle]
            if did is None:
                continue
            facets.append(
                models.AppBskyRichtextFacet.Main(
                    features=[models.AppBskyRichtextFacet.Mention(did=did)],
                    index=models.AppBskyRichtextFacet.ByteSlice(
                        byte_start=mention.byte_start, byte_end=mention.byte_end
                    ),
                )
            )
        return sorted(facets, key=lambda facet: facet.index.byte_start)

    def _resolve(self, account: str, handle: str) -> str | None:
        """The DID of ``handle``; None when it does not resolve (the mention stays text)."""
        from atproto_client import models

        params = models.ComAtprotoIdentityResolveHandle.Params(handle=handle)

        def resolve(client: Any, _held: _Account) -> Any:
            return client.com.atproto.identity.resolve_handle(params)

        try:
            answer = self._call(account, resolve, sent=False)
        except PublishRejected:  # 400: "Unable to resolve handle"
            logger.info("account '{}': @{} does not resolve: left as text", account, handle)
            return None
        did = getattr(answer, "did", None)
        return did if isinstance(did, str) and did.startswith("did:") else None

    def _embed(self, account: str, media: tuple[MediaItem, ...]) -> Any:
        if not media:
            return None
        from atproto_client import models

        images = []
        for item in media:
            blob, picture = self._upload(account, item)
            images.append(
                models.AppBskyEmbedImages.Image(
                    alt=item.alt or "",
                    image=blob,
                    aspect_ratio=models.AppBskyEmbedDefs.AspectRatio(
                        width=picture.width, height=picture.height
                    ),
                )
            )
        return models.AppBskyEmbedImages.Main(images=images)

    def _upload(self, account: str, media: MediaItem) -> tuple[Any, Any]:
        """Upload one image (recompressed first when over the blob limit). An upload is
        never public by itself: a failure is retried, never ambiguous."""
        from bot.publish.resize import describe, fit

        name = media.path.name
        try:
            data = media.data if media.data is not None else media.path.read_bytes()
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise PublishRejected(f"cannot read image {name}: {reason}") from exc
        try:
            data = fit(data, BLOB_LIMIT)
            picture = describe(data)
        except PublishRejected as exc:
            raise PublishRejected(f"image {name}: {exc}") from exc

        def upload(client: Any, _held: _Account) -> Any:
            # What ``client.com.atproto.repo.upload_blob`` does, with the bytes as httpx's
            # ``content`` (the SDK passes them as ``data``, which httpx deprecates) and their
            # own type (the SDK's default is ``*/*``).
            from atproto_client import models
            from atproto_client.models.utils import get_response_model  # type: ignore[import-untyped]

            response = client.invoke_procedure(
                "com.atproto.repo.uploadBlob",
                content=data,
                headers={"Content-Type": picture.mime},
                output_encoding="application/json",
            )
            return get_response_model(response, models.ComAtprotoRepoUploadBlob.Response)

        try:
            answer = self._call(account, upload, sent=False)
        except PublishRateLimited:
            raise
        except PublishError as exc:
            raise type(exc)(f"uploading image {name} to Bluesky failed: {exc}") from exc
        blob = getattr(answer, "blob", None)
        if blob is None:
            raise PublishError(f"Bluesky's answer to the upload of {name} gives no blob")
        return blob, picture

    def _reply_ref(self, account: str, reply_to: Receipt) -> Any:
        """Strong references to the thread's root and to the parent (URI and CID)."""
        from atproto_client import models

        def ref(uri: str) -> Any:
            cid = self._cids.get(uri)
            if cid is None:
                repo, _, rkey = _split_uri(uri)
                found = self._get(account, repo, rkey)
                if found is None:
                    raise PublishRejected(
                        f"the post this one replies to ({uri}) is not on Bluesky any more"
                    )
                cid = found.cid
            return models.ComAtprotoRepoStrongRef.Main(uri=uri, cid=cid)

        return models.AppBskyFeedPost.ReplyRef(
            root=ref(reply_to.thread_root), parent=ref(reply_to.remote_id)
        )

    # -- reading ---------------------------------------------------------------------------

    def _get(self, account: str, repo: str, rkey: str, *, quiet: bool = False) -> _Post | None:
        """The post at ``rkey`` in ``repo``; None when there is none.

        ``quiet``: a failure is None too (the caller has a better error to raise)."""
        from atproto_client import models

        params = models.ComAtprotoRepoGetRecord.Params(repo=repo, collection=COLLECTION, rkey=rkey)

        def get(client: Any, _held: _Account) -> Any:
            return client.invoke_query("com.atproto.repo.getRecord", params=params).content

        try:
            body = self._call(account, get, sent=False)
        except PublishRejected as exc:
            if _xrpc_error(exc.__cause__) == "RecordNotFound" or quiet:
                return None
            raise
        except PublishError:
            if quiet:
                return None
            raise
        post = _post(body)
        self._cids[post.uri] = post.cid
        return post

    def _records(self, account: str) -> list[_Post]:
        """The account's posts (at most ``READ_PAGES`` pages), as listRecords gives them."""
        from atproto_client import models

        held = self._account(account)
        posts: list[_Post] = []
        cursor: str | None = None
        for _ in range(READ_PAGES):
            params = models.ComAtprotoRepoListRecords.Params(
                repo=held.did, collection=COLLECTION, limit=100, cursor=cursor
            )

            def page(client: Any, _held: _Account, params: Any = params) -> Any:
                return client.invoke_query("com.atproto.repo.listRecords", params=params).content

            body = self._call(account, page, sent=False)
            records = body.get("records") if isinstance(body, dict) else None
            if not isinstance(records, list):
                raise PublishError("Bluesky's listRecords answer is not what its lexicon says")
            posts += [_post(record) for record in records]
            cursor = body.get("cursor")
            if not records or not isinstance(cursor, str) or not cursor:
                break
        return posts

    def find(self, item: Outgoing, since: datetime) -> Receipt | None:
        """The record at this delivery's key (``getRecord``) when it has the delivery's text
        and replies to the same post; without a key, the account's posts since ``since``."""
        try:
            held = self._account(item.account)
            if item.key:
                found = self._get(item.account, held.did, tid_for(item.key))
                if found is not None and self._is(found, item):
                    return item.receipt(found.uri, self._url(item.account, found.uri))
                return None
            for post in self._newest_first(self._records(item.account), since):
                if self._is(post, item):
                    return item.receipt(post.uri, self._url(item.account, post.uri))
            return None
        except PublishError as exc:
            raise self._unreadable(item.account, exc) from exc

    @staticmethod
    def _is(post: _Post, item: Outgoing) -> bool:
        return (
            post.parent == item.reply_to_id
            and post.media == len(item.media)
            and same_text(post.text, item.text)
        )

    def recent(self, account: str, since: datetime) -> list[Published]:
        """The account's posts created since ``since``, newest first (by ``createdAt``: a
        derived record key says nothing of time)."""
        try:
            posts = self._newest_first(self._records(account), since)
        except PublishError as exc:
            raise self._unreadable(account, exc) from exc
        return [
            Published(p.uri, p.text, p.parent, p.media, p.created_at, self._url(account, p.uri))
            for p in posts
        ]

    @staticmethod
    def _newest_first(posts: list[_Post], since: datetime) -> list[_Post]:
        floor = since.astimezone(UTC)
        dated = [p for p in posts if p.created_at is None or p.created_at >= floor]
        return sorted(
            dated,
            key=lambda p: (p.created_at or datetime.max.replace(tzinfo=UTC), _split_uri(p.uri)[2]),
            reverse=True,
        )

    def _unreadable(self, account: str, exc: PublishError) -> PublishError:
        handle = self.identities.get(account, (account, None))[0]
        return PublishError(f"reading @{handle.lstrip('@')}'s Bluesky posts failed: {exc}")

    def delete(self, account: str, remote_id: str) -> None:
        """``deleteRecord``; a record already gone is no error (the PDS says so too)."""
        from atproto_client import models

        repo, collection, rkey = _split_uri(remote_id)
        data = models.ComAtprotoRepoDeleteRecord.Data(repo=repo, collection=collection, rkey=rkey)

        def delete(client: Any, _held: _Account) -> Any:
            return client.com.atproto.repo.delete_record(data)

        try:
            self._call(account, delete, sent=False)
        except PublishRejected as exc:
            if _xrpc_error(exc.__cause__) != "RecordNotFound":
                raise
        if self._get(account, repo, rkey) is not None:
            raise PublishError(f"Bluesky did not delete {self._url(account, remote_id)}: check it")

    def whoami(self, account: str) -> str:
        """The handle of the session (``com.atproto.server.getSession``: the PDS confirms the
        session is alive)."""

        def get(client: Any, _held: _Account) -> Any:
            return client.com.atproto.server.get_session()

        answer = self._call(account, get, sent=False)
        handle = getattr(answer, "handle", None)
        if not isinstance(handle, str) or not handle:
            raise PublishError("Bluesky's answer to getSession gives no handle")
        return handle

    def check(self, account: str) -> list[str]:
        """What ``accounts check`` should say besides the handle: an account the PDS calls
        inactive, a DID in accounts.yaml that is not the session's (or none: a change of
        handle would stop publishing), a session that could not be saved."""

        def get(client: Any, _held: _Account) -> Any:
            return client.com.atproto.server.get_session()

        answer = self._call(account, get, sent=False)
        held = self._account(account)
        handle, did = self.identities.get(account, (account, None))
        said: list[str] = []
        if getattr(answer, "active", None) is False:
            status = getattr(answer, "status", None) or "no reason given"
            said.append(
                f"the Bluesky account @{held.handle} is not active ({status}): the PDS will "
                "refuse its posts; sign in on bsky.app to see why"
            )
        if did and did != held.did:
            said.append(
                f"accounts.yaml gives account '{account}' the DID {did}, but its app password "
                f"belongs to {held.did}: nothing will be sent until one of them is corrected"
            )
        elif not did:
            said.append(
                f"accounts.yaml gives account '{account}' no did: add `did: {held.did}` so "
                f"that a change of the handle @{handle.lstrip('@')} does not stop publishing"
            )
        path = self._session_path(account)
        if path is None or not path.is_file():
            where = path.parent if path is not None else "no folder"
            said.append(
                f"the Bluesky session of account '{account}' cannot be saved ({where}): each "
                "run logs in again, and logins are limited to 30 in 5 minutes; make the folder "
                "writable or set DIPLOBOT_BLUESKY_SESSION_DIR"
            )
        return said

    def _url(self, account: str, uri: str) -> str:
        handle = self.identities.get(account, (account, None))[0].lstrip("@")
        return f"https://bsky.app/profile/{handle}/post/{_split_uri(uri)[2]}"

    # -- errors ----------------------------------------------------------------------------

    def _failure(self, exc: BaseException, *, sent: bool, login: bool = False) -> PublishError:
        return _failure(exc, sent=sent, login=login)


class _Deadline(Exception):
    """A call to the PDS outlived its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g} s")
        self.seconds = seconds


def _ended(exc: BaseException) -> bool:
    """Whether the PDS refused a session as over (expired, revoked, not valid), rather than
    failing to answer."""
    from atproto_client.exceptions import AtProtocolError  # type: ignore[import-untyped]

    return isinstance(exc, AtProtocolError) and (
        _xrpc_error(exc) in _SESSION_ERRORS or _status(exc) in (400, 401)
    )


def _status(exc: BaseException | None) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _xrpc_error(exc: BaseException | None) -> str | None:
    """The ``error`` name of an XRPC error answer (``{"error": …, "message": …}``)."""
    content = getattr(getattr(exc, "response", None), "content", None)
    name = getattr(content, "error", None)
    if name is None and isinstance(content, dict):
        name = content.get("error")
    return name if isinstance(name, str) else None


def _xrpc_message(exc: BaseException | None) -> str:
    content = getattr(getattr(exc, "response", None), "content", None)
    message = getattr(content, "message", None)
    if message is None and isinstance(content, dict):
        message = content.get("message")
    return str(message)[:300] if message else ""


def _maybe_exists(exc: PublishError) -> bool:
    """Whether a refused create may mean "a record is already at this key": a 5xx (what
    bsky.social answers), a 409 or an ``…AlreadyExists`` error (newer PDSs)."""
    status = _status(exc.__cause__)
    if status is None:
        return False  # no answer: find tells later
    return status >= 500 or status == 409 or "AlreadyExists" in (_xrpc_error(exc.__cause__) or "")


def _failure(exc: BaseException, *, sent: bool, login: bool = False) -> PublishError:
    """What a failed XRPC call means. ``sent``: the request may have had an effect (a create);
    ``login``: it was ``createSession``."""
    import httpx
    from atproto_client.exceptions import (
        AtProtocolError,
        InvokeTimeoutError,
        NetworkError,
    )

    if isinstance(exc, PublishError):
        return exc
    status = _status(exc)
    error = _xrpc_error(exc) or ""
    message = _xrpc_message(exc)
    detail = f"{error}: {message}" if error and message else error or message
    if isinstance(exc, _Deadline):
        return (PublishAmbiguous if sent else PublishError)(
            f"Bluesky did not answer within {exc.seconds:g} s"
        )
    if status is None:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout):
            return PublishError("could not connect to Bluesky (nothing was sent)")
        if isinstance(exc, InvokeTimeoutError) or isinstance(cause, httpx.TimeoutException):
            return (PublishAmbiguous if sent else PublishError)("Bluesky did not answer in time")
        if isinstance(exc, NetworkError) or isinstance(cause, httpx.TransportError):
            return (PublishAmbiguous if sent else PublishError)(
                "the connection to Bluesky was lost"
            )
        if isinstance(exc, AtProtocolError | ValueError):  # an answer the SDK cannot read
            return (PublishAmbiguous if sent else PublishError)(
                f"Bluesky's answer cannot be read ({type(exc).__name__})"
            )
        return (PublishAmbiguous if sent else PublishError)(
            f"unexpected error talking to Bluesky ({type(exc).__name__})"
        )
    if status == 429:
        return PublishRateLimited(
            f"Bluesky rate limit reached (429{': ' + detail if detail else ''})",
            _retry_at(getattr(exc, "response", None)),
        )
    if status == 401 or error in _AUTH_ERRORS or error in _SESSION_ERRORS or status == 403:
        what = "the app password" if login else "the session"
        return PublishAuthFailed(
            f"Bluesky refused {what} ({status} {detail or 'unauthorized'}): check the "
            "account's app password (DIPLOBOT_<ACCOUNT>_APP_PASSWORD)"
        )
    if status >= 500:
        if sent:
            return PublishAmbiguous(f"Bluesky answered {status}: the post may or may not exist")
        return PublishError(f"Bluesky answered {status}: try again later")
    if status == 409 or "AlreadyExists" in error:
        return PublishRejected(f"Bluesky refused the record ({status}): {detail or 'conflict'}")
    if 400 <= status < 500:
        return PublishRejected(f"Bluesky refused the request ({status}): {detail or 'bad request'}")
    return (PublishAmbiguous if sent else PublishError)(f"Bluesky answered {status}")


def _retry_at(response: Any) -> datetime:
    """``ratelimit-reset`` (epoch seconds) of a 429, believed within a day; else 5 minutes."""
    headers = getattr(response, "headers", None) or {}
    now = datetime.now(UTC)
    reset = headers.get("ratelimit-reset") if isinstance(headers, dict) else None
    try:
        retry_at = datetime.fromtimestamp(int(reset), UTC) if reset else None
    except (TypeError, ValueError, OverflowError, OSError):
        retry_at = None
    if retry_at is None or retry_at > now + RATE_LIMIT_LONGEST:
        retry_at = now + RATE_LIMIT_FALLBACK
    return max(retry_at, now)


# -- records --------------------------------------------------------------------------------

_UNREADABLE = "Bluesky's record answer is not what its lexicon says"


def _split_uri(uri: str) -> tuple[str, str, str]:
    """``at://did/collection/rkey`` → (did, collection, rkey)."""
    parts = uri.removeprefix("at://").split("/")
    if len(parts) != 3 or not all(parts):
        raise PublishError(f"not a Bluesky record URI: {uri!r}")
    return parts[0], parts[1], parts[2]


def _post(body: Any) -> _Post:
    """A record of getRecord or listRecords (``{"uri", "cid", "value"}``) as a post."""
    if not isinstance(body, dict):
        raise PublishError(_UNREADABLE)
    uri, cid, value = body.get("uri"), body.get("cid"), body.get("value")
    if not isinstance(uri, str) or not isinstance(cid, str) or not isinstance(value, dict):
        raise PublishError(_UNREADABLE)
    text = value.get("text")
    if not isinstance(text, str):
        raise PublishError(_UNREADABLE)
    reply = value.get("reply") if isinstance(value.get("reply"), dict) else {}
    parent = (reply.get("parent") or {}).get("uri") if isinstance(reply, dict) else None
    root = (reply.get("root") or {}).get("uri") if isinstance(reply, dict) else None
    embed = value.get("embed") if isinstance(value.get("embed"), dict) else {}
    images = embed.get("images") if isinstance(embed, dict) else None
    if images is None and isinstance(embed, dict) and isinstance(embed.get("media"), dict):
        images = embed["media"].get("images")  # recordWithMedia
    return _Post(
        uri,
        cid,
        text,
        parent if isinstance(parent, str) else None,
        root if isinstance(root, str) else None,
        len(images) if isinstance(images, list) else 0,
        iso_time(value.get("createdAt")),
    )


def _now_iso() -> str:
    """createdAt: RFC 3339 in UTC with ``Z`` and microseconds (two posts of one thread, made
    within a millisecond, still sort in order)."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# -- saved sessions -------------------------------------------------------------------------


def _read_session(path: Path | None, owner: tuple[str, str]) -> str | None:
    """The session saved in ``path`` for ``owner`` (PDS URL, identifier); None when there is
    none, or it was made for another PDS or another account (it is not used then)."""
    if path is None:
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("cannot read the Bluesky session {} ({}): logging in", path, exc)
        return None
    if not isinstance(saved, dict) or [saved.get("pds"), saved.get("login")] != list(owner):
        return None
    session = saved.get("session")
    return session if isinstance(session, str) and session else None


def _write_session(path: Path | None, owner: tuple[str, str], session: str) -> None:
    """Save a session (0600, replaced atomically). A failure costs a login next time, never
    a post: it is logged, not raised."""
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    saved = {"pds": owner[0], "login": owner[1], "session": session}
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(saved, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("cannot save the Bluesky session in {} ({})", path, exc.strerror)
        with contextlib.suppress(OSError):  # no folder to leave it in, or already gone
            tmp.unlink()
