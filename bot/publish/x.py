"""Publish to X through tweepy's v2 ``Client`` (OAuth 1.0a user context, one token per account).

Three corrections to tweepy, made here:

- tweepy hard-codes ``https://api.twitter.com`` and sets no timeout. :class:`_RoutedSession`
  rewrites the host to ``DIPLOBOT_X_API_URL`` in ``request()``, *before* the request is
  prepared and signed (a transport adapter would rewrite after signing and break OAuth 1.0a),
  and gives every request a timeout.
- tweepy 4.17 only has the retired v1.1 media upload: images go through the v2 endpoints
  (``POST /2/media/upload``, then ``POST /2/media/metadata`` for the alt text), signed with the
  same OAuth 1.0a credentials.
- ``wait_on_rate_limit`` would sleep inside the call: it stays off, and a 429 becomes
  :class:`PublishRateLimited` carrying ``retry_at``.
"""

from __future__ import annotations

import mimetypes
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import tweepy
from requests_oauthlib import OAuth1

from bot.config import Secret, XSettings
from bot.errors import (
    ConfigError,
    PublishAmbiguous,
    PublishAuthFailed,
    PublishDuplicate,
    PublishError,
    PublishNoCredits,
    PublishRateLimited,
    PublishRejected,
)
from bot.publish.base import MediaItem, Outgoing, Receipt
from bot.publish.match import same_post_text

TWEEPY_HOST = "https://api.twitter.com"
DEFAULT_API_URL = "https://api.x.com"
RATE_LIMIT_FALLBACK = timedelta(minutes=15)  # X's rate-limit window, when no reset header
FIND_PAGES = 3  # at most 300 recent posts are read when reconciling


class _RoutedSession(requests.Session):
    """Sends tweepy's requests to ``base`` with a timeout; signing sees the final URL."""

    def __init__(self, base: str, timeout: float) -> None:
        super().__init__()
        self.base = base.rstrip("/")
        self.timeout = timeout
        # Proxy settings are read from the environment once, not on every request (requests
        # does that per call, which costs more than signing the request).
        self.proxies.update(requests.utils.get_environ_proxies(self.base))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self.verify = bundle  # what trust_env would have read: an institution's own CA
        self.trust_env = False

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        text = url.decode() if isinstance(url, bytes) else url
        if text.startswith(TWEEPY_HOST):
            text = self.base + text[len(TWEEPY_HOST) :]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, text, *args, **kwargs)


@dataclass(frozen=True)
class XCredentials:
    access_token: Secret
    access_secret: Secret


def env_name(account: str) -> str:
    """``francediplo_EN`` → ``FRANCEDIPLO_EN``: the account's part of its variable names."""
    return re.sub(r"[^A-Za-z0-9]", "_", account).upper()


class XPublisher:
    """X API v2 for every account it has a token for."""

    name = "x"

    def __init__(
        self,
        api_key: Secret,
        api_secret: Secret,
        accounts: dict[str, XCredentials],
        handles: dict[str, str],
        *,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 20.0,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.accounts = accounts
        self.handles = handles
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._clients: dict[str, tweepy.Client] = {}
        self._user_ids: dict[str, str] = {}

    @classmethod
    def from_settings(cls, x: XSettings, handles: dict[str, str]) -> XPublisher | None:
        """A publisher for the accounts that have credentials; None when none has."""
        if not x.tokens or x.api_key is None or x.api_secret is None:
            return None
        accounts = {a: XCredentials(t, s) for a, (t, s) in x.tokens.items()}
        return cls(x.api_key, x.api_secret, accounts, handles, api_url=x.api_url, timeout=x.timeout)

    def client(self, account: str) -> tweepy.Client:
        if account not in self._clients:
            creds = self._creds(account)
            client = tweepy.Client(
                consumer_key=self.api_key.reveal(),
                consumer_secret=self.api_secret.reveal(),
                access_token=creds.access_token.reveal(),
                access_token_secret=creds.access_secret.reveal(),
                wait_on_rate_limit=False,
            )
            client.session = _RoutedSession(self.api_url, self.timeout)
            self._clients[account] = client
        return self._clients[account]

    def _creds(self, account: str) -> XCredentials:
        try:
            return self.accounts[account]
        except KeyError:
            raise ConfigError(
                f"X credentials for account '{account}' missing: set "
                f"DIPLOBOT_{env_name(account)}_ACCESS_TOKEN and "
                f"DIPLOBOT_{env_name(account)}_ACCESS_SECRET"
            ) from None

    # -- publishing ----------------------------------------------------------------------

    def publish(self, item: Outgoing) -> Receipt:
        media_ids = [self._upload(item.account, m) for m in item.media]
        try:
            response = self.client(item.account).create_tweet(
                text=item.text,
                in_reply_to_tweet_id=item.reply_to,
                media_ids=media_ids or None,
                user_auth=True,
            )
        except Exception as exc:
            raise _classify(exc, sent=True) from exc
        tweet_id = str(response.data["id"])
        return Receipt(tweet_id, self._url(item.account, tweet_id))

    def _upload(self, account: str, media: MediaItem) -> str:
        """Upload one image (v2), then set its alt text; return the media id."""
        creds = self._creds(account)
        auth = OAuth1(
            self.api_key.reveal(),
            self.api_secret.reveal(),
            creds.access_token.reveal(),
            creds.access_secret.reveal(),
        )
        session = self.client(account).session
        mime = mimetypes.guess_type(media.path.name)[0] or "application/octet-stream"
        try:
            with open(media.path, "rb") as handle:
                response = session.post(
                    f"{self.api_url}/2/media/upload",
                    files={"media": (media.path.name, handle, mime)},
                    data={"media_category": "tweet_image"},
                    auth=auth,
                )
            _raise_for(response)
            media_id = str(response.json()["data"]["id"])
            if media.alt:
                response = session.post(
                    f"{self.api_url}/2/media/metadata",
                    json={"id": media_id, "metadata": {"alt_text": {"text": media.alt}}},
                    auth=auth,
                )
                _raise_for(response)
        except OSError as exc:
            raise PublishRejected(f"cannot read image {media.path.name}: {exc.strerror}") from exc
        except PublishError:
            raise
        except Exception as exc:
            # Nothing is public until the post is created: an upload failure is retryable.
            err = _classify(exc, sent=False)
            raise (
                err
                if not isinstance(err, PublishAmbiguous)
                else PublishError(f"media upload failed: {err}")
            ) from exc
        return media_id

    def find(self, account: str, text: str, since: datetime) -> Receipt | None:
        client = self.client(account)
        try:
            user_id = self._user_id(account)
            token = None
            for _ in range(FIND_PAGES):
                response = client.get_users_tweets(
                    user_id,
                    max_results=100,
                    start_time=since.astimezone(UTC),
                    pagination_token=token,
                    tweet_fields=["created_at"],
                    user_auth=True,
                )
                for tweet in response.data or []:
                    if same_post_text(tweet.text, text):
                        return Receipt(str(tweet.id), self._url(account, str(tweet.id)))
                token = (response.meta or {}).get("next_token")
                if not token:
                    return None
        except Exception as exc:
            raise PublishError(
                f"reading @{self.handles.get(account, account)}'s timeline "
                f"failed: {_classify(exc, sent=False)}"
            ) from exc
        return None

    def delete(self, account: str, remote_id: str) -> None:
        try:
            self.client(account).delete_tweet(remote_id, user_auth=True)
        except tweepy.NotFound:
            return  # already gone
        except Exception as exc:
            raise _classify(exc, sent=False) from exc

    def whoami(self, account: str) -> str:
        """The handle the account's credentials belong to (``accounts check``)."""
        try:
            response = self.client(account).get_me(user_auth=True)
        except Exception as exc:
            raise _classify(exc, sent=False) from exc
        self._user_ids[account] = str(response.data.id)
        return str(response.data.username)

    def _user_id(self, account: str) -> str:
        if account not in self._user_ids:
            self.whoami(account)
        return self._user_ids[account]

    def _url(self, account: str, tweet_id: str) -> str:
        return f"https://x.com/{self.handles.get(account, account)}/status/{tweet_id}"


def _raise_for(response: requests.Response) -> None:
    if response.status_code >= 400:
        raise _from_status(response.status_code, response.headers, _detail(response))


def _detail(response: requests.Response | None) -> str:
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    detail = body.get("detail") or body.get("title") or ""
    errors = body.get("errors")
    if not detail and isinstance(errors, list) and errors and isinstance(errors[0], dict):
        detail = errors[0].get("message") or errors[0].get("detail") or ""
    return str(detail)[:300]


def _classify(exc: Exception, *, sent: bool) -> PublishError:
    """Map tweepy's and requests' exceptions to ours. ``sent``: the request may have arrived."""
    if isinstance(exc, PublishError):
        return exc
    if isinstance(exc, tweepy.HTTPException):
        response = exc.response
        return _from_status(response.status_code, response.headers, _detail(response))
    if isinstance(exc, requests.ConnectTimeout):
        return PublishError("could not connect to X in time (nothing was sent)")
    if isinstance(exc, requests.Timeout):
        return (PublishAmbiguous if sent else PublishError)("X did not answer in time")
    if isinstance(exc, requests.ConnectionError):
        return (PublishAmbiguous if sent else PublishError)("the connection to X was lost")
    return PublishError(f"unexpected error talking to X ({type(exc).__name__})")


def _from_status(status: int, headers: Any, detail: str) -> PublishError:
    if status == 429:
        reset = headers.get("x-rate-limit-reset") if headers is not None else None
        now = datetime.now(UTC)
        try:
            retry_at = (
                datetime.fromtimestamp(int(reset), UTC) if reset else now + (RATE_LIMIT_FALLBACK)
            )
        except (TypeError, ValueError, OverflowError):
            retry_at = now + RATE_LIMIT_FALLBACK
        return PublishRateLimited("X rate limit reached (429)", max(retry_at, now))
    if status == 402:
        return PublishNoCredits(
            "X answered 402: the developer account has no credits left; top up at developer.x.com"
        )
    if status == 401:
        return PublishAuthFailed(
            "X refused the credentials (401): check the account's access token and secret"
        )
    if status == 403:
        if "duplicate" in detail.lower():
            return PublishDuplicate("X refused the text as a duplicate (403)")
        return PublishAuthFailed(f"X refused the request (403): {detail or 'forbidden'}")
    if status >= 500:
        return PublishAmbiguous(f"X answered {status}: the post may or may not exist")
    if 400 <= status < 500:
        return PublishRejected(f"X refused the post ({status}): {detail or 'bad request'}")
    return PublishError(f"X answered {status}")
