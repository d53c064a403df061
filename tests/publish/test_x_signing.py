"""The publisher's short OAuth 1.0a signing path gives exactly oauthlib's header.

tweepy's AsyncClient signs every request through the client class the publisher swaps in
(``bot.platforms.x._RoutedOAuthClient``). Its fast path must agree with oauthlib byte for byte:
compared here on the URLs tweepy builds (sorted query, colons percent-encoded after signing),
with fixed nonce and timestamp. The fake X also verifies every signature with oauthlib.
"""

from __future__ import annotations

import pytest
from oauthlib.oauth1 import Client as OAuthClient

from bot.platforms.x import _API_URL, TWEEPY_HOST, _RoutedOAuthClient

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
    ours = _RoutedOAuthClient(*KEYS, **fixed).sign(url, method, headers={"User-Agent": "t"})
    assert ours == theirs


def test_the_host_is_rewritten_before_signing() -> None:
    """tweepy asks for api.twitter.com; the request is signed for (and sent to) our base."""
    fixed = {"nonce": "n0nce", "timestamp": "1732392000"}
    token = _API_URL.set("http://127.0.0.1:9999")
    try:
        url, headers, _ = _RoutedOAuthClient(*KEYS, **fixed).sign(TWEEPY_HOST + "/2/tweets", "POST")
    finally:
        _API_URL.reset(token)
    assert url == "http://127.0.0.1:9999/2/tweets"
    assert headers == OAuthClient(*KEYS, **fixed).sign(url, "POST")[1]


def test_a_form_body_goes_through_oauthlib() -> None:
    """Bodies that are part of the signature are left to oauthlib's general path."""
    fixed = {"nonce": "n0nce", "timestamp": "1732392000"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    url = "http://127.0.0.1:8080/2/media/upload"
    ours = _RoutedOAuthClient(*KEYS, **fixed).sign(url, "POST", "a=1&b=%C3%A9", form)
    assert ours == OAuthClient(*KEYS, **fixed).sign(url, "POST", "a=1&b=%C3%A9", form)
