"""The fake X API speaks X API v2 well enough for tweepy 4.17 and raw OAuth1-signed requests.

Every test drives the real ``tweepy.Client`` (OAuth 1.0a user context) or ``requests`` with
``requests_oauthlib.OAuth1`` against :class:`servers.x.XServer`, and asserts on what the
client returns or raises and on what the fake stored and recorded. The fault tests pin how
tweepy reports each failure; the publisher maps these exceptions.
"""

from __future__ import annotations

import base64
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import time_machine
import tweepy
from requests_oauthlib import OAuth1
from twitter_text import parse_tweet

from servers.x import DUPLICATE, INVALID_MEDIA, SPEC_PATH, SpecViolation, XServer, _may_exceed

X_API = "https://api.twitter.com"
FR, EN = "francediplo", "francediplo_EN"


class RewritingSession(requests.Session):
    """Sends tweepy's ``https://api.twitter.com`` requests to the fake, with a timeout.

    The URL is rewritten in ``request()``, before ``prepare_request`` runs the OAuth1 auth
    object, so the signature covers the URL actually requested.
    """

    def __init__(self, base: str, timeout: float = 5.0) -> None:
        super().__init__()
        self.base = base.rstrip("/")
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if isinstance(url, str) and url.startswith(X_API):
            url = self.base + url[len(X_API) :]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def srv() -> Iterator[XServer]:
    accounts = {FR: ("fr-token", "fr-token-secret"), EN: ("en-token", "en-token-secret")}
    with XServer(accounts=accounts, consumer=("app-key", "app-secret")) as server:
        yield server


def client(srv: XServer, account: str = FR, timeout: float = 5.0, **changes: Any) -> tweepy.Client:
    """A tweepy client as the publisher builds one: user context, session pointed at the fake."""
    options: dict[str, Any] = {**srv.credentials(account), **changes}
    api = tweepy.Client(**options)
    api.session = RewritingSession(srv.url, timeout)
    return api


def signed(srv: XServer, account: str = FR, **oauth: Any) -> OAuth1:
    """requests_oauthlib signing as ``account`` (Authorization header, HMAC-SHA1)."""
    creds = srv.credentials(account)
    return OAuth1(
        creds["consumer_key"],
        client_secret=creds["consumer_secret"],
        resource_owner_key=creds["access_token"],
        resource_owner_secret=creds["access_token_secret"],
        signature_type="auth_header",
        **oauth,
    )


def png(width: int = 2, height: int = 1) -> bytes:
    """A valid RGB PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def upload(srv: XServer, account: str = FR, data: bytes | None = None) -> dict[str, Any]:
    """One-shot multipart upload, as the publisher does it (tweepy has no v2 media upload)."""
    response = requests.post(
        srv.url + "/2/media/upload",
        files={"media": ("flag.png", data or png(), "image/png")},
        data={"media_category": "tweet_image"},
        auth=signed(srv, account),
        timeout=5,
    )
    assert response.status_code == 200, response.text
    data_: dict[str, Any] = response.json()["data"]
    return data_


def texts(srv: XServer, account: str = FR) -> list[str]:
    return [tweet["text"] for tweet in srv.timeline(account)]


# -- posting ---------------------------------------------------------------------------------


def test_create_tweet_stores_the_post_on_the_account_timeline(srv: XServer) -> None:
    """create_tweet answers X's 201 shape and the post appears on that account only."""
    response = client(srv).create_tweet(text="La France salue l'accord")

    tweet_id = response.data["id"]
    assert tweet_id.isdigit()
    assert response.data == {
        "id": tweet_id,
        "text": "La France salue l'accord",
        "edit_history_tweet_ids": [tweet_id],
    }
    [stored] = srv.timeline(FR)
    assert stored["id"] == tweet_id
    assert stored["text"] == "La France salue l'accord"
    assert stored["reply_to"] is None
    assert stored["author_id"] == srv.account(FR).user_id
    assert abs(stored["created_at"] - datetime.now(UTC)) < timedelta(seconds=5)
    assert srv.timeline(EN) == []
    [request] = srv.requests
    assert (request.method, request.path, request.account, request.status) == (
        "POST",
        "/2/tweets",
        FR,
        201,
    )
    assert not srv.errors


def test_tweepy_sends_a_json_body_signed_with_hmac_sha1_for_the_fakes_url(srv: XServer) -> None:
    """tweepy posts JSON (not covered by the signature) with an OAuth header from OAuth1."""
    client(srv).create_tweet(text="Bonjour")

    [call] = srv.calls
    assert call.headers["Content-Type"] == "application/json"
    assert call.body == {"text": "Bonjour"}
    authorization = call.headers["Authorization"]
    assert authorization.startswith("OAuth ")
    assert 'oauth_signature_method="HMAC-SHA1"' in authorization
    assert 'oauth_token="fr-token"' in authorization
    assert call.headers["User-Agent"].startswith("Python/")


def test_reply_chain_links_each_post_to_the_previous_one(srv: XServer) -> None:
    """in_reply_to_tweet_id is stored as reply_to, so a thread can be followed back."""
    api = client(srv)
    first = api.create_tweet(text="1/3 Sommet pour le climat").data["id"]
    second = api.create_tweet(text="2/3 Accord historique", in_reply_to_tweet_id=first).data["id"]
    third = api.create_tweet(text="3/3 Merci", in_reply_to_tweet_id=second).data["id"]

    timeline = srv.timeline(FR)
    assert [t["id"] for t in timeline] == [first, second, third]
    assert [t["reply_to"] for t in timeline] == [None, first, second]
    assert int(first) < int(second) < int(third)


def test_reply_to_a_deleted_post_is_forbidden(srv: XServer) -> None:
    """X refuses a reply to a post that no longer exists."""
    api = client(srv)
    parent = api.create_tweet(text="bientôt supprimé").data["id"]
    api.delete_tweet(parent, user_auth=True)

    with pytest.raises(tweepy.Forbidden) as caught:
        api.create_tweet(text="réponse", in_reply_to_tweet_id=parent)

    assert "deleted or not visible" in caught.value.api_messages[0]
    assert srv.timeline(FR) == []


def test_duplicate_text_is_forbidden_for_the_same_account_only(srv: XServer) -> None:
    """The same text twice from one account is X's 403 duplicate; another account may post it."""
    client(srv).create_tweet(text="Bienvenue")

    with pytest.raises(tweepy.Forbidden) as caught:
        client(srv).create_tweet(text="Bienvenue")
    client(srv, EN).create_tweet(text="Bienvenue")

    assert caught.value.api_messages == [DUPLICATE]
    assert caught.value.response.json() == {
        "title": "Forbidden",
        "detail": DUPLICATE,
        "type": "about:blank",
        "status": 403,
    }
    assert texts(srv) == ["Bienvenue"]
    assert texts(srv, EN) == ["Bienvenue"]
    assert not srv.errors


def test_duplicate_check_forgets_posts_older_than_the_window(srv: XServer) -> None:
    """A day later the same text may be posted again (time moved for client and fake alike)."""
    client(srv).create_tweet(text="Bonne année")
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=25)):
        client(srv).create_tweet(text="Bonne année")

    assert texts(srv) == ["Bonne année", "Bonne année"]


def test_text_over_280_weighted_characters_is_a_bad_request(srv: XServer) -> None:
    """Length is twitter-text's weighted length: 140 CJK characters already weigh 280."""
    client(srv).create_tweet(text="日" * 140)

    with pytest.raises(tweepy.BadRequest) as caught:
        client(srv).create_tweet(text="日" * 141)

    assert caught.value.api_messages[0].startswith("Your Tweet text is too long.")
    assert len(srv.timeline(FR)) == 1
    assert not srv.errors  # a rule of X's, not a spec violation


@pytest.mark.parametrize(
    "text",
    [
        "a.co " * 5,  # short URLs weigh 23 each, more than their length
        "x.co b.co c.co " + "é" * 90,
        "👨‍👩‍👧‍👦" * 10,  # one emoji of 7 code points weighs 2
        "日本" * 60 + " t.co",
        "e\u0301" * 70,  # combining accents, composed by NFC
        "\u0344" * 70,  # grows under NFC
    ],
)
def test_the_fakes_length_shortcut_never_skips_a_text_over_the_limit(text: str) -> None:
    """The fake counts only texts that may exceed the limit; the rest surely do not."""
    weight = parse_tweet(text).weightedLength
    skipped = [limit for limit in range(300) if not _may_exceed(text, limit)]
    assert skipped, "the shortcut never applies to this text: the case checks nothing"
    assert weight <= min(skipped), (text, weight, min(skipped))


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "note"),
    [
        ({"consumer_secret": "wrong"}, "invalid signature"),
        ({"consumer_key": "wrong"}, "unknown consumer key"),
        ({"access_token_secret": "wrong"}, "invalid signature"),
        ({"access_token": "wrong"}, "unknown access token"),
    ],
    ids=["consumer-secret", "consumer-key", "token-secret", "token"],
)
def test_bad_credentials_are_unauthorized(srv: XServer, change: dict[str, str], note: str) -> None:
    """Any wrong key, token or secret is X's 401 problem, and nothing is posted."""
    with pytest.raises(tweepy.Unauthorized) as caught:
        client(srv, **change).create_tweet(text="Bonjour")

    assert caught.value.response.json() == {
        "title": "Unauthorized",
        "type": "about:blank",
        "status": 401,
        "detail": "Unauthorized",
    }
    assert srv.timeline(FR) == []
    [request] = srv.requests
    assert request.status == 401
    assert request.account is None
    assert note in (request.note or "")


def test_replayed_nonce_is_unauthorized(srv: XServer) -> None:
    """A request signed again with the same nonce and timestamp is refused the second time."""
    auth = signed(srv, nonce="fixed-nonce-0123456789", timestamp=str(int(time.time())))
    first = requests.get(srv.url + "/2/users/me", auth=auth, timeout=5)
    second = requests.get(srv.url + "/2/users/me", auth=auth, timeout=5)

    assert (first.status_code, second.status_code) == (200, 401)
    assert srv.requests[-1].note == "nonce already used"


def test_timestamp_outside_the_window_is_unauthorized(srv: XServer) -> None:
    """A signature made an hour ago (a skewed clock) is refused."""
    auth = signed(srv, timestamp=str(int(time.time()) - 3600))
    response = requests.get(srv.url + "/2/users/me", auth=auth, timeout=5)

    assert response.status_code == 401
    assert "timestamp" in (srv.requests[-1].note or "")


def test_request_without_oauth_is_unauthorized(srv: XServer) -> None:
    """tweepy's read methods default to app-only auth: without a bearer token, 'Bearer None'."""
    api = client(srv)

    with pytest.raises(tweepy.Unauthorized):
        api.get_users_tweets(srv.account(FR).user_id)  # user_auth=False by default

    assert srv.calls[-1].headers["Authorization"] == "Bearer None"


def test_form_body_is_covered_by_the_signature(srv: XServer) -> None:
    """Form parameters are signed: the signature checks, and a body changed afterwards fails."""
    media_id = upload(srv)["id"]
    form = {"id": media_id}
    accepted = requests.post(srv.url + "/2/media/metadata", data=form, auth=signed(srv), timeout=5)

    prepared = requests.Request(
        "POST", srv.url + "/2/media/metadata", data=form, auth=signed(srv)
    ).prepare()
    prepared.body = f"id={int(media_id) + 1}"
    prepared.headers["Content-Length"] = str(len(prepared.body))
    with requests.Session() as session:
        tampered = session.send(prepared, timeout=5)

    # Signed correctly, but the spec only takes JSON here: past OAuth, refused by the spec.
    assert accepted.status_code == 400
    assert "Unsupported Content-Type" in accepted.json()["errors"][0]["message"]
    assert tampered.status_code == 401
    assert srv.requests[-1].note == "invalid signature"


# -- reading ---------------------------------------------------------------------------------


def test_get_me_returns_the_account_of_the_access_token(srv: XServer) -> None:
    """get_me answers the id, name and @handle of the account whose token signed the request."""
    me = client(srv, EN).get_me(user_auth=True).data

    assert (str(me.id), me.username) == (srv.account(EN).user_id, EN)


def test_get_users_tweets_pages_newest_first_with_created_at(srv: XServer) -> None:
    """The reconciler's search: newest first, max_results per page, next_token to continue."""
    api = client(srv)
    posted = [api.create_tweet(text=f"annonce {n}").data["id"] for n in range(7)]
    user_id = srv.account(FR).user_id

    page = api.get_users_tweets(user_id, user_auth=True, max_results=5, tweet_fields=["created_at"])
    rest = api.get_users_tweets(
        user_id,
        user_auth=True,
        max_results=5,
        tweet_fields=["created_at"],
        pagination_token=page.meta["next_token"],
    )

    assert [str(t.id) for t in page.data] == posted[::-1][:5]
    assert page.meta["result_count"] == 5
    assert (page.meta["newest_id"], page.meta["oldest_id"]) == (posted[6], posted[2])
    assert [str(t.id) for t in rest.data] == posted[::-1][5:]
    assert "next_token" not in rest.meta
    assert all(isinstance(t.created_at, datetime) for t in page.data)
    assert page.data[0].text == "annonce 6"
    assert not srv.errors


def test_get_users_tweets_filters_by_start_time(srv: XServer) -> None:
    """start_time drops older posts, such as ones from before the publication slot."""
    srv.add_tweet(FR, "hier", created_at=datetime.now(UTC) - timedelta(days=1))
    client(srv).create_tweet(text="aujourd'hui")

    found = client(srv).get_users_tweets(
        srv.account(FR).user_id,
        user_auth=True,
        start_time=datetime.now(UTC) - timedelta(hours=1),
    )

    assert [t.text for t in found.data] == ["aujourd'hui"]


def test_get_users_tweets_of_an_account_without_posts_has_no_data(srv: XServer) -> None:
    """An empty timeline is result_count 0 and no data key (tweepy's data is None)."""
    found = client(srv).get_users_tweets(srv.account(EN).user_id, user_auth=True)

    assert found.data is None
    assert found.meta == {"result_count": 0}


def test_max_results_outside_5_to_100_is_a_spec_violation(srv: XServer) -> None:
    """The spec bounds max_results: 400 for the client, and recorded for the test."""
    with pytest.raises(tweepy.BadRequest) as caught:
        client(srv).get_users_tweets(srv.account(FR).user_id, user_auth=True, max_results=3)

    assert "max_results" in caught.value.api_messages[0]
    [violation] = srv.errors
    assert isinstance(violation, SpecViolation)


def test_get_tweet_finds_a_post_and_reports_a_missing_one_in_errors(srv: XServer) -> None:
    """get_tweet/get_tweets answer 200 for missing posts, with a resource-not-found error."""
    tweet_id = client(srv).create_tweet(text="Bonjour").data["id"]

    found = client(srv).get_tweet(tweet_id, user_auth=True, tweet_fields=["author_id"])
    missing = client(srv).get_tweet("123", user_auth=True)
    both = client(srv).get_tweets([tweet_id, "123"], user_auth=True)

    assert (found.data.text, str(found.data.author_id)) == ("Bonjour", srv.account(FR).user_id)
    assert missing.data is None
    assert missing.errors[0]["detail"] == "Could not find tweet with id: [123]."
    assert [t.text for t in both.data] == ["Bonjour"]
    assert [e["resource_id"] for e in both.errors] == ["123"]
    assert not srv.errors


def test_delete_tweet_removes_only_own_posts(srv: XServer) -> None:
    """delete_tweet answers deleted: true; another account's post is refused, a gone one 404."""
    mine = client(srv).create_tweet(text="à retirer").data["id"]
    theirs = client(srv, EN).create_tweet(text="not yours").data["id"]

    with pytest.raises(tweepy.Forbidden):
        client(srv).delete_tweet(theirs, user_auth=True)
    deleted = client(srv).delete_tweet(mine, user_auth=True)
    with pytest.raises(tweepy.NotFound):
        client(srv).delete_tweet(mine, user_auth=True)

    assert deleted.data == {"deleted": True}
    assert srv.timeline(FR) == []
    assert texts(srv, EN) == ["not yours"]


# -- the spec --------------------------------------------------------------------------------


def test_the_spec_is_the_copy_kept_with_the_tests() -> None:
    """Tests read X's spec from tests/data, never from outside the repository."""
    assert SPEC_PATH.parent.name == "x-api"
    assert SPEC_PATH.parent.parent.name == "data"
    assert (SPEC_PATH.parent / "LICENSE.txt").exists()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"text": 5}, "$.text"),
        ({"text": "x", "reply": {}}, "$.reply"),
        ({"text": "x", "media": {"media_ids": []}}, "$.media.media_ids"),
        ({"text": "x", "media": {"media_ids": ["abc"]}}, "$.media.media_ids[0]"),
        ({"text": "x", "link": "https://example.org"}, "$"),
    ],
    ids=["text-not-string", "reply-without-id", "no-media-ids", "media-id-not-digits", "extra"],
)
def test_body_violating_the_spec_is_400_and_recorded(
    srv: XServer, body: dict[str, Any], where: str
) -> None:
    """A body the spec rejects gets X's invalid-request problem and lands in srv.errors."""
    response = requests.post(srv.url + "/2/tweets", json=body, auth=signed(srv), timeout=5)

    assert response.status_code == 400
    problem = response.json()
    assert problem["title"] == "Invalid Request"
    assert problem["type"].endswith("/2/problems/invalid-request")
    assert problem["errors"][0]["message"].startswith(where + ":")
    [violation] = srv.errors
    assert isinstance(violation, SpecViolation)
    assert violation.messages[0].startswith(where + ":")
    assert srv.timeline(FR) == []


def test_unknown_endpoint_is_404_and_recorded(srv: XServer) -> None:
    """A path the spec does not have is a client bug the test should see."""
    not_an_id = requests.get(srv.url + "/2/tweets/latest", auth=signed(srv), timeout=5)
    legacy = requests.post(srv.url + "/1.1/statuses/update.json", auth=signed(srv), timeout=5)

    assert not_an_id.status_code == 400  # /2/tweets/{id} takes digits only
    assert legacy.status_code == 404
    assert [type(e) for e in srv.errors] == [SpecViolation, SpecViolation]


# -- media -----------------------------------------------------------------------------------


def test_media_upload_metadata_and_post_with_alt_text(srv: XServer) -> None:
    """Upload (multipart), alt text (metadata), then a post with the media id shows the alt."""
    image = png(3, 2)
    media = upload(srv, data=image)
    metadata = requests.post(
        srv.url + "/2/media/metadata",
        json={"id": media["id"], "metadata": {"alt_text": {"text": "Drapeau français"}}},
        auth=signed(srv),
        timeout=5,
    )
    posted = client(srv).create_tweet(text="Avec image", media_ids=[media["id"]])

    assert media["media_key"] == f"3_{media['id']}"
    assert media["size"] == len(image)
    assert media["image"] == {"image_type": "image/png", "w": 3, "h": 2}
    assert media["expires_after_secs"] > 0
    assert metadata.status_code == 200
    assert metadata.json() == {
        "data": {
            "id": media["id"],
            "associated_metadata": {"alt_text": {"text": "Drapeau français"}},
        }
    }
    [stored] = srv.timeline(FR)
    assert stored["id"] == posted.data["id"]
    assert stored["media"] == [
        {
            "id": media["id"],
            "media_key": media["media_key"],
            "type": "photo",
            "alt_text": "Drapeau français",
        }
    ]
    assert srv.media(media["id"])["data"] == image
    assert srv.calls[0].headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert not srv.errors


def test_media_alt_text_is_readable_through_get_users_tweets(srv: XServer) -> None:
    """expansions=attachments.media_keys with media.fields=alt_text returns tweepy Media."""
    media_id = upload(srv)["id"]
    requests.post(
        srv.url + "/2/media/metadata",
        json={"id": media_id, "metadata": {"alt_text": {"text": "Carte"}}},
        auth=signed(srv),
        timeout=5,
    )
    client(srv).create_tweet(text="Carte", media_ids=[media_id])

    found = client(srv).get_users_tweets(
        srv.account(FR).user_id,
        user_auth=True,
        expansions=["attachments.media_keys"],
        media_fields=["alt_text"],
        tweet_fields=["attachments"],
    )

    [media] = found.includes["media"]
    assert (media.media_key, media.type, media.alt_text) == (f"3_{media_id}", "photo", "Carte")
    assert found.data[0].attachments == {"media_keys": [f"3_{media_id}"]}
    assert not srv.errors


def test_media_upload_as_json_takes_base64(srv: XServer) -> None:
    """The JSON form of the one-shot upload carries the file base64-encoded."""
    body = {"media": base64.b64encode(png()).decode(), "media_category": "tweet_image"}
    response = requests.post(srv.url + "/2/media/upload", json=body, auth=signed(srv), timeout=5)

    assert response.status_code == 200
    assert srv.media(response.json()["data"]["id"])["data"] == png()


def test_media_upload_without_category_violates_the_spec(srv: XServer) -> None:
    """media_category is required by the spec's MediaUploadRequest."""
    response = requests.post(
        srv.url + "/2/media/upload",
        files={"media": ("flag.png", png(), "image/png")},
        auth=signed(srv),
        timeout=5,
    )

    assert response.status_code == 400
    assert "media_category" in response.json()["errors"][0]["message"]
    assert len(srv.errors) == 1


def test_chunked_upload_initialize_append_finalize(srv: XServer) -> None:
    """The chunked flow assembles the segments in order, then the media can be posted."""
    image = png(4, 4)
    auth = signed(srv)
    init = requests.post(
        srv.url + "/2/media/upload/initialize",
        json={
            "media_type": "image/png",
            "total_bytes": len(image),
            "media_category": "tweet_image",
        },
        auth=auth,
        timeout=5,
    ).json()["data"]
    media_id = init["id"]
    for index, start in enumerate(range(0, len(image), 40)):
        appended = requests.post(
            f"{srv.url}/2/media/upload/{media_id}/append",
            files={"media": ("chunk", image[start : start + 40], "application/octet-stream")},
            data={"segment_index": str(index)},
            auth=auth,
            timeout=5,
        )
        assert appended.status_code == 200, appended.text
        assert "expires_at" in appended.json()["data"]
    final = requests.post(f"{srv.url}/2/media/upload/{media_id}/finalize", auth=auth, timeout=5)
    status = requests.get(
        srv.url + "/2/media/upload",
        params={"media_id": media_id, "command": "STATUS"},
        auth=auth,
        timeout=5,
    )
    client(srv).create_tweet(text="En morceaux", media_ids=[media_id])

    assert init["media_key"] == f"3_{media_id}"
    assert final.json()["data"]["image"] == {"image_type": "image/png", "w": 4, "h": 4}
    assert status.json()["data"]["id"] == media_id
    assert srv.media(media_id)["data"] == image
    assert srv.timeline(FR)[0]["media"][0]["id"] == media_id
    assert not srv.errors


def test_post_with_unknown_unfinished_or_foreign_media_is_a_bad_request(srv: XServer) -> None:
    """Media ids must exist, be finished and belong to the posting account."""
    foreign = upload(srv, EN)["id"]
    unfinished = requests.post(
        srv.url + "/2/media/upload/initialize",
        json={"media_type": "image/png", "total_bytes": 10, "media_category": "tweet_image"},
        auth=signed(srv),
        timeout=5,
    ).json()["data"]["id"]

    for media_id in ("123456789", unfinished, foreign):
        with pytest.raises(tweepy.BadRequest) as caught:
            client(srv).create_tweet(text=f"image {media_id}", media_ids=[media_id])
        assert caught.value.api_messages == [INVALID_MEDIA]
    assert srv.timeline(FR) == []
    assert not srv.errors


def test_upload_of_bytes_that_are_not_an_image_is_refused(srv: XServer) -> None:
    """A tweet_image must be an image."""
    response = requests.post(
        srv.url + "/2/media/upload",
        files={"media": ("notes.txt", b"not an image", "text/plain")},
        data={"media_category": "tweet_image"},
        auth=signed(srv),
        timeout=5,
    )

    assert response.status_code == 400


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "exception"),
    [
        ("401", tweepy.Unauthorized),
        ("402", tweepy.HTTPException),
        ("403", tweepy.Forbidden),
        ("429", tweepy.TooManyRequests),
        ("429_no_reset", tweepy.TooManyRequests),
        ("429_daily", tweepy.TooManyRequests),
        ("500", tweepy.TwitterServerError),
        ("503", tweepy.TwitterServerError),
    ],
)
def test_status_faults_raise_tweepys_exception_and_store_nothing(
    srv: XServer, kind: str, exception: type[Exception]
) -> None:
    """Each scripted status maps to one tweepy exception; the post is not created."""
    srv.fail_next(kind)

    with pytest.raises(exception) as caught:
        client(srv).create_tweet(text="Bonjour")

    assert type(caught.value) is exception
    assert caught.value.response.status_code == int(kind[:3])
    assert srv.timeline(FR) == []
    [request] = srv.requests
    assert (request.fault, request.status, request.account) == (kind, int(kind[:3]), FR)


def test_429_carries_the_reset_time_in_epoch_seconds(srv: XServer) -> None:
    """x-rate-limit-reset is readable from the response headers and as exc.reset_time."""
    reset = int(time.time()) + 600
    srv.fail_next("429", reset=reset)

    with pytest.raises(tweepy.TooManyRequests) as caught:
        client(srv).create_tweet(text="Bonjour")

    headers = caught.value.response.headers
    assert headers["x-rate-limit-reset"] == str(reset)
    assert headers["x-rate-limit-remaining"] == "0"
    assert caught.value.reset_time == reset
    assert caught.value.response.json()["title"] == "Too Many Requests"


def test_429_without_reset_header_has_no_reset_time(srv: XServer) -> None:
    """Without x-rate-limit-reset tweepy's reset_time is None: the caller must pick a delay."""
    srv.fail_next("429_no_reset")

    with pytest.raises(tweepy.TooManyRequests) as caught:
        client(srv).create_tweet(text="Bonjour")

    assert "x-rate-limit-reset" not in caught.value.response.headers
    assert caught.value.reset_time is None


def test_429_daily_cap_reports_its_reset_in_the_24_hour_headers(srv: XServer) -> None:
    """The daily post cap leaves x-rate-limit-remaining above 0; the reset is elsewhere."""
    tomorrow = int(time.time()) + 86_000
    srv.fail_next("429_daily", reset=tomorrow)

    with pytest.raises(tweepy.TooManyRequests) as caught:
        client(srv).create_tweet(text="Bonjour")

    headers = caught.value.response.headers
    assert headers["x-rate-limit-remaining"] != "0"
    assert headers["x-user-limit-24hour-remaining"] == "0"
    assert headers["x-user-limit-24hour-reset"] == str(tomorrow)
    assert caught.value.reset_time != tomorrow  # tweepy reads only x-rate-limit-reset


def test_wait_on_rate_limit_resends_at_once_when_no_reset_is_given(srv: XServer) -> None:
    """tweepy's wait_on_rate_limit re-sends immediately, unbounded, without a reset header."""
    srv.fail_next("429_no_reset", count=3)

    started = time.monotonic()
    client(srv, wait_on_rate_limit=True).create_tweet(text="Bonjour")

    assert time.monotonic() - started < 2
    assert [r.status for r in srv.requests] == [429, 429, 429, 201]
    assert texts(srv) == ["Bonjour"]


def test_402_is_credits_depleted_as_a_plain_http_exception(srv: XServer) -> None:
    """402 has no tweepy subclass: HTTPException, with X's CreditsDepleted body."""
    srv.fail_next("402")

    with pytest.raises(tweepy.HTTPException) as caught:
        client(srv).create_tweet(text="Bonjour")

    body = caught.value.response.json()
    assert body["title"] == "CreditsDepleted"
    assert "does not have any credits" in body["detail"]
    assert caught.value.api_messages == [body["detail"]]
    assert str(caught.value).startswith("402 Payment Required")


def test_faults_can_target_one_method_and_path(srv: XServer) -> None:
    """A fault scripted for POST /2/tweets leaves other requests alone until it is consumed."""
    srv.fail_next("503", method="POST", path="/2/tweets")
    api = client(srv)

    api.get_me(user_auth=True)
    with pytest.raises(tweepy.TwitterServerError):
        api.create_tweet(text="Bonjour")
    api.create_tweet(text="Bonjour")

    assert [(r.path, r.status) for r in srv.requests] == [
        ("/2/users/me", 200),
        ("/2/tweets", 503),
        ("/2/tweets", 201),
    ]


def test_slow_answer_times_out_but_the_post_exists(srv: XServer) -> None:
    """A post whose answer comes too late was made: requests' ReadTimeout, tweepy unwrapped."""
    srv.fail_next("slow", path="/2/tweets", seconds=30)

    with pytest.raises(requests.exceptions.ReadTimeout):
        client(srv, timeout=0.3).create_tweet(text="Peut-être publié")

    assert texts(srv) == ["Peut-être publié"]
    assert srv.requests[-1].status == 201


def test_dropped_connection_after_store_is_a_connection_error_but_the_post_exists(
    srv: XServer,
) -> None:
    """The connection closes without an answer after the post was stored."""
    srv.fail_next("drop_after_store")

    with pytest.raises(requests.exceptions.ConnectionError):
        client(srv).create_tweet(text="Publié sans réponse")

    assert texts(srv) == ["Publié sans réponse"]
    assert srv.requests[-1].status is None


def test_dropped_connection_before_store_posts_nothing(srv: XServer) -> None:
    """The same ConnectionError, but here nothing was stored: only the timeline can tell."""
    srv.fail_next("drop_before_store")

    with pytest.raises(requests.exceptions.ConnectionError):
        client(srv).create_tweet(text="Jamais publié")

    assert srv.timeline(FR) == []


def test_malformed_answer_is_a_json_decode_error(srv: XServer) -> None:
    """A 200 cut off mid-JSON surfaces as requests' JSONDecodeError."""
    srv.fail_next("malformed")

    with pytest.raises(requests.exceptions.JSONDecodeError):
        client(srv).create_tweet(text="Bonjour")


@pytest.mark.parametrize("kind", ["slow", "hang"])
def test_pending_answers_do_not_block_stop(kind: str) -> None:
    """stop() returns at once while a request is being held, and the client sees the close."""
    server = XServer(accounts={FR: ("t", "s")}).start()
    server.fail_next(kind, seconds=60)
    outcome: list[BaseException] = []

    def post() -> None:
        try:
            client(server, timeout=10).create_tweet(text="Bonjour")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=post)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    thread.join(5)

    assert time.monotonic() - started < 2
    assert not thread.is_alive()
    assert outcome and isinstance(outcome[0], requests.exceptions.ConnectionError)


def test_fail_next_rejects_unknown_faults(srv: XServer) -> None:
    """A misspelt fault is an error in the test, not a silent no-op."""
    with pytest.raises(ValueError, match="unknown fault 'drop-after-store'"):
        srv.fail_next("drop-after-store")


# -- what X's read endpoints return ----------------------------------------------------------


def timeline_page(srv: XServer, account: str = FR, **params: str) -> dict[str, Any]:
    """GET /2/users/:id/tweets as raw JSON (tweepy would hide the entities' details)."""
    response = requests.get(
        f"{srv.url}/2/users/{srv.account(account).user_id}/tweets",
        params=params,
        auth=signed(srv, account),
        timeout=5,
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def test_timeline_text_has_t_co_links_and_entities_give_the_urls_as_written(
    srv: XServer,
) -> None:
    """Every URL in a read post is a t.co link; entities.urls maps it back to the URL written
    (with http:// added to a URL written without a scheme)."""
    sent = "Lire https://www.diplomatie.gouv.fr/fr/cop31?a=1&b=2 et diplomatie.gouv.fr/liban."
    client(srv).create_tweet(text=sent)

    post = timeline_page(srv, **{"tweet.fields": "entities"})["data"][0]

    assert "diplomatie.gouv.fr" not in post["text"]
    links = [u["url"] for u in post["entities"]["urls"]]
    assert len(links) == 2 and all(link.startswith("https://t.co/") for link in links)
    assert [u["expanded_url"] for u in post["entities"]["urls"]] == [
        "https://www.diplomatie.gouv.fr/fr/cop31?a=1&b=2",
        "http://diplomatie.gouv.fr/liban",
    ]
    assert post["text"] == f"Lire {links[0]} et {links[1]}."
    for entity in post["entities"]["urls"]:
        assert post["text"][entity["start"] : entity["end"]] == entity["url"]
    assert texts(srv) == [sent]  # the inspection API keeps the text as sent
    assert not srv.errors  # the answer matches the spec


def test_timeline_text_is_html_escaped(srv: XServer) -> None:
    """&, < and > come back as &amp;, &lt; and &gt; in text; quotes are left alone."""
    client(srv).create_tweet(text='France & Liban : <coopération> "renforcée"')

    post = timeline_page(srv)["data"][0]

    assert post["text"] == 'France &amp; Liban : &lt;coopération&gt; "renforcée"'
    assert "entities" not in post  # not asked for


def test_a_post_with_media_ends_with_a_t_co_link_to_the_media(srv: XServer) -> None:
    """An image post's text gets one more t.co link, after a space; its entity carries the
    media_key and points at the post's photo page."""
    media = upload(srv)
    post_id = client(srv).create_tweet(text="Journée", media_ids=[media["id"]]).data["id"]

    post = timeline_page(srv, **{"tweet.fields": "entities,attachments"})["data"][0]

    (entity,) = post["entities"]["urls"]
    assert post["text"] == f"Journée {entity['url']}"
    assert entity["media_key"] == media["media_key"] == post["attachments"]["media_keys"][0]
    assert entity["expanded_url"] == f"https://x.com/{FR}/status/{post_id}/photo/1"
    assert not srv.errors


# -- faults that spoil an answer after X acted on the request ---------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [("empty_2xx", 201, b"{}"), ("null_data", 201, b'{"data": null}')],
)
def test_unexpected_2xx_answers_still_store_the_post(
    srv: XServer, kind: str, status: int, body: bytes
) -> None:
    """X stored the post but its answer gives no id: only the timeline can tell."""
    srv.fail_next(kind, path="/2/tweets")

    response = requests.post(
        srv.url + "/2/tweets", json={"text": "Bonjour"}, auth=signed(srv), timeout=5
    )

    assert (response.status_code, response.content) == (status, body)
    assert texts(srv) == ["Bonjour"]


def test_malformed_answer_after_store_is_cut_off_json_but_the_post_exists(srv: XServer) -> None:
    """A 200 whose JSON is cut off, after X stored the post."""
    srv.fail_next("malformed_after_store", path="/2/tweets")

    with pytest.raises(requests.exceptions.JSONDecodeError):
        client(srv).create_tweet(text="Peut-être publié")

    assert texts(srv) == ["Peut-être publié"]


def test_refusal_is_answered_as_it_is_by_a_processing_fault(srv: XServer) -> None:
    """A spoiling fault does not turn X's refusal into a success (the text is too long)."""
    srv.fail_next("empty_2xx", path="/2/tweets")

    with pytest.raises(tweepy.BadRequest):
        client(srv).create_tweet(text="x" * 281)

    assert srv.timeline(FR) == []


def test_trickled_answer_never_trips_a_read_timeout_but_takes_its_time(srv: XServer) -> None:
    """One byte every 10 ms: a 0.25 s read timeout never fires, yet the answer takes more than
    four times as long."""
    srv.fail_next("trickle", path="/2/tweets", seconds=0.01)
    started = time.monotonic()

    post = client(srv, timeout=0.25).create_tweet(text="Goutte à goutte")

    assert time.monotonic() - started > 1  # ~250 bytes of head and body
    assert post.data["text"] == "Goutte à goutte" and texts(srv) == ["Goutte à goutte"]


def test_trickle_is_released_by_stop(srv: XServer) -> None:
    """stop() ends a trickled answer at once; the client sees the connection close."""
    server = XServer(accounts={FR: ("t", "s")}).start()
    server.fail_next("trickle", seconds=0.5)
    outcome: list[BaseException] = []

    def post() -> None:
        try:
            client(server, timeout=10).create_tweet(text="Bonjour")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=post)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    thread.join(5)

    assert time.monotonic() - started < 2 and not thread.is_alive()
    assert outcome and isinstance(outcome[0], requests.exceptions.ConnectionError)


@pytest.mark.parametrize("process", [False, True])
def test_answer_next_sends_exactly_the_scripted_answer(srv: XServer, process: bool) -> None:
    """Any status, headers and bytes; the post is stored only when the fault processes it."""
    srv.answer_next(
        299, b"\x00not json", content_type="text/weird", headers={"X-A": "b"}, process=process
    )

    response = requests.post(
        srv.url + "/2/tweets", json={"text": "Bonjour"}, auth=signed(srv), timeout=5
    )

    assert (response.status_code, response.content) == (299, b"\x00not json")
    assert response.headers["Content-Type"] == "text/weird" and response.headers["X-A"] == "b"
    assert texts(srv) == (["Bonjour"] if process else [])
    assert srv.requests[-1].fault == "answer"


def test_a_fault_can_wait_for_matching_requests_to_pass_first(srv: XServer) -> None:
    """after=1: the first matching request is served, the second gets the fault."""
    srv.fail_next("503", path="/2/tweets", after=1)
    api = client(srv)
    api.create_tweet(text="Un")
    with pytest.raises(tweepy.TwitterServerError):
        api.create_tweet(text="Deux")
    api.create_tweet(text="Trois")

    assert texts(srv) == ["Un", "Trois"]


# -- reposts (retweets) ---------------------------------------------------------------------


def _repost(srv: XServer, account: str, tweet_id: str, user_id: str | None = None) -> Any:
    """``POST /2/users/:id/retweets`` signed as ``account`` (its own user id by default)."""
    uid = user_id or srv.account(account).user_id
    return requests.post(
        f"{srv.url}/2/users/{uid}/retweets",
        json={"tweet_id": tweet_id},
        auth=signed(srv, account),
        timeout=5,
    )


def test_a_repost_is_on_the_timeline_once_and_undone(srv: XServer) -> None:
    """A repost shows on the reposter's timeline as X shows one ("RT @handle: text",
    referenced_tweets ``retweeted``); a second request changes nothing and answers the same;
    DELETE undoes it, and succeeds again with no action; retweeted_by lists the reposter."""
    original = client(srv).create_tweet(text="Bonjour à tous").data["id"]
    first = _repost(srv, EN, original)
    assert first.status_code == 200, first.text
    assert first.json() == {"data": {"retweeted": True, "rest_id": original}}
    second = _repost(srv, EN, original)
    assert second.json() == first.json()
    assert srv.reposts(EN) == [original]
    (shown,) = srv.timeline(EN)
    assert (shown["text"], shown["repost_of"]) == (f"RT @{FR}: Bonjour à tous", original)
    page = client(srv, EN).get_users_tweets(
        srv.account(EN).user_id, tweet_fields=["referenced_tweets"], user_auth=True
    )
    assert [t.referenced_tweets[0].type for t in page.data] == ["retweeted"]
    users = client(srv, EN).get_retweeters(original, user_auth=True)
    assert [u.username for u in users.data] == [EN]
    # (tweepy's unretweet takes the user id from the token's prefix, as X's tokens have it.)
    path = f"{srv.url}/2/users/{srv.account(EN).user_id}/retweets/{original}"
    undone = requests.delete(path, auth=signed(srv, EN), timeout=5)
    assert undone.json() == {"data": {"retweeted": False}}
    assert srv.reposts(EN) == [] and srv.timeline(EN) == []
    again = requests.delete(path, auth=signed(srv, EN), timeout=5)
    assert again.json() == {"data": {"retweeted": False}}
    assert not srv.errors


def test_a_repost_is_refused_for_another_user_a_missing_post_and_past_the_limit() -> None:
    accounts = {FR: ("fr-token", "fr-secret"), EN: ("en-token", "en-secret")}
    with XServer(accounts=accounts, consumer=("app-key", "app-secret"), repost_limit=2) as srv:
        original = client(srv).create_tweet(text="Bonjour").data["id"]
        other = _repost(srv, EN, original, user_id=srv.account(FR).user_id)
        assert other.status_code == 403
        missing = _repost(srv, EN, "1234567890")
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["type"].endswith("resource-not-found")
        assert srv.reposts(EN) == []
        # X counts every request to the endpoint (the 404 too): the third is a 429.
        assert _repost(srv, EN, original).status_code == 200
        limited = _repost(srv, EN, original)
        assert limited.status_code == 429
        assert srv.reposts(EN) == [original]
        assert int(limited.headers["x-rate-limit-reset"]) > time.time()
        # A deleted post takes its reposts with it.
        assert _repost(srv, FR, original).status_code == 200
        client(srv).delete_tweet(original)
        assert srv.reposts(FR) == []
        assert not srv.errors
