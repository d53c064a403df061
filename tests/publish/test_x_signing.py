"""The publisher's short OAuth 1.0a signing path gives exactly oauthlib's header.

Each account's tweepy client (``bot.platforms.x._RoutedClient``) signs its requests with its
own ``_Signer``, never by a class swapped in tweepy. The fast path must agree with oauthlib byte
for byte:
compared here on the URLs tweepy builds (sorted query, colons percent-encoded after signing),
with fixed nonce and timestamp. The fake X also verifies every signature with oauthlib.
"""

from __future__ import annotations

import pytest
from oauthlib.oauth1 import Client as OAuthClient

from bot.platforms.x import _RoutedClient, _Signer

KEYS = ("consumer key", "consumer+secret/é", "123-token~x", "token secret&=")


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "http://127.0.0.1:8080/2/tweets"),
        ("DELETE", "http://127.0.0.1:8080/2/tweets/1723456789012345678"),
        ("GET", "http://127.0.0.1:8080/2/users/me"),
        (
            "GET",
            "http://127.0.0.1:8080/2/users/1000001/tweets?max_results=100"
            "&start_time=2026-11-23T20:00:00%2B00:00&tweet.fields=created_at,text",
        ),
        ("GET", "https://api.x.com:443/2/users/1/tweets?pagination_token=a+b%2Fc&empty="),
        ("GET", "HTTPS://API.X.com/2/users/1/tweets?q=%C3%A9t%C3%A9%20%F0%9F%87%AB%F0%9F%87%B7"),
        ("post", "http://localhost/2/tweets?b=2&a=1&a=0"),
    ],
)
def test_fast_path_header_equals_oauthlibs(
    method: str, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed = {"nonce": "4572616e48616d6d65724c61686176", "timestamp": "1732392000"}
    theirs = OAuthClient(*KEYS, **fixed).sign(url, method, headers={"User-Agent": "t"})

    def not_here(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the fast path handed this request to oauthlib")

    monkeypatch.setattr(OAuthClient, "sign", not_here)  # ours must not fall back
    ours = _Signer(*KEYS, **fixed).sign(url, method, headers={"User-Agent": "t"})
    assert ours == theirs


def test_the_host_is_rewritten_before_signing() -> None:
    """tweepy would ask for api.twitter.com; the request is signed for (and sent to) our base."""
    fixed = {"nonce": "n0nce", "timestamp": "1732392000"}
    client = _RoutedClient("http://127.0.0.1:9999", _Signer(*KEYS, **fixed))
    url, headers = client.signed("POST", "/2/tweets", None, {})
    assert str(url) == "http://127.0.0.1:9999/2/tweets"
    assert headers == OAuthClient(*KEYS, **fixed).sign(str(url), "POST")[1]


def test_a_query_is_signed_as_sent() -> None:
    """Sorted query, signed with its colons, sent with them percent-encoded (as tweepy does)."""
    fixed = {"nonce": "n0nce", "timestamp": "1732392000"}
    client = _RoutedClient("http://127.0.0.1:9999", _Signer(*KEYS, **fixed))
    params = {"start_time": "2026-11-23T20:00:00+00:00", "max_results": "100"}
    url, headers = client.signed("GET", "/2/users/1/tweets", params, {})
    signed_for = "http://127.0.0.1:9999/2/users/1/tweets?max_results=100&start_time=2026-11-23T20:00:00%2B00:00"
    assert str(url) == signed_for.replace(":00%2B00:00", "%3A00%2B00%3A00").replace(
        "T20:", "T20%3A"
    )
    assert headers == OAuthClient(*KEYS, **fixed).sign(signed_for, "GET")[1]


def test_importing_the_publisher_leaves_tweepy_untouched() -> None:
    """No class of tweepy is swapped at import: its module still signs with oauthlib's."""
    import tweepy.asynchronous.client as tweepy_async

    import bot.platforms.x  # noqa: F401

    assert tweepy_async.OAuthClient is OAuthClient


def test_a_form_body_goes_through_oauthlib() -> None:
    """Bodies that are part of the signature are left to oauthlib's general path."""
    fixed = {"nonce": "n0nce", "timestamp": "1732392000"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    url = "http://127.0.0.1:8080/2/media/upload"
    ours = _Signer(*KEYS, **fixed).sign(url, "POST", "a=1&b=%C3%A9", form)
    assert ours == OAuthClient(*KEYS, **fixed).sign(url, "POST", "a=1&b=%C3%A9", form)
