"""The fake Mastodon instance on the wire (plain requests): as rude as a real instance."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from servers.mastodon import MastodonServer

TOKEN = "tok-CANARY"


@pytest.fixture
def srv() -> Iterator[MastodonServer]:
    with MastodonServer(accounts={"fr": (TOKEN, "francediplo")}) as server:
        yield server


def _post(srv: MastodonServer, data: dict[str, str], **headers: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {TOKEN}", **headers}
    return requests.post(f"{srv.url}/api/v1/statuses", data=data, headers=headers, timeout=5)


def test_no_token_or_a_wrong_one_is_401_with_mastodons_body(srv: MastodonServer) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        answer = requests.post(
            f"{srv.url}/api/v1/statuses", data={"status": "x"}, headers=headers, timeout=5
        )
        assert answer.status_code == 401
        assert answer.json() == {"error": "The access token is invalid"}
    assert srv.statuses("fr") == []


def test_every_answer_carries_the_rate_limit_headers(srv: MastodonServer) -> None:
    answer = _post(srv, {"status": "Bonjour"})
    assert answer.status_code == 200
    assert answer.headers["X-RateLimit-Limit"] == "300"
    assert int(answer.headers["X-RateLimit-Remaining"]) < 300
    reset = datetime.fromisoformat(answer.headers["X-RateLimit-Reset"].replace("Z", "+00:00"))
    assert reset > datetime.now(UTC)


def test_a_text_over_500_is_422_but_urls_count_23(srv: MastodonServer) -> None:
    answer = _post(srv, {"status": "é" * 501})
    assert answer.status_code == 422
    assert answer.json() == {"error": "Validation failed: Text character limit of 500 exceeded"}
    assert (
        _post(srv, {"status": "é" * 476 + " https://example.org/" + "a" * 300}).status_code == 200
    )


def test_the_idempotency_key_is_remembered_for_its_ttl_only(srv: MastodonServer) -> None:
    srv.idempotency_ttl = 0.5
    first = _post(srv, {"status": "Un"}, **{"Idempotency-Key": "k"}).json()
    again = _post(srv, {"status": "Autre texte"}, **{"Idempotency-Key": "k"}).json()
    assert again["id"] == first["id"] and len(srv.statuses("fr")) == 1
    time.sleep(0.6)
    later = _post(srv, {"status": "Un"}, **{"Idempotency-Key": "k"}).json()
    assert later["id"] != first["id"] and len(srv.statuses("fr")) == 2


def test_an_unprocessed_attachment_cannot_be_posted(srv: MastodonServer) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01" + b"\x00" * 8
    headers = {"Authorization": f"Bearer {TOKEN}"}
    upload = requests.post(
        f"{srv.url}/api/v2/media",
        files={"file": ("a.png", png, "image/png")},
        data={"description": "Une carte"},
        headers=headers,
        timeout=5,
    )
    assert upload.status_code == 202 and upload.json()["url"] is None
    media_id = upload.json()["id"]
    refused = _post(srv, {"status": "Image", "media_ids[]": media_id})
    assert refused.status_code == 422 and "finished processing" in refused.json()["error"]
    poll = requests.get(f"{srv.url}/api/v1/media/{media_id}", headers=headers, timeout=5)
    assert poll.status_code == 206
    ready = requests.get(f"{srv.url}/api/v1/media/{media_id}", headers=headers, timeout=5)
    assert ready.status_code == 200 and ready.json()["url"]
    assert _post(srv, {"status": "Image", "media_ids[]": media_id}).status_code == 200
    again = _post(srv, {"status": "Encore", "media_ids[]": media_id})
    assert again.status_code == 422 and "already attached" in again.json()["error"]


def test_statuses_are_paged_by_the_link_header(srv: MastodonServer) -> None:
    ids = [srv.add_status("fr", f"Message {n}") for n in range(5)]
    account = srv.account("fr").id
    url = f"{srv.url}/api/v1/accounts/{account}/statuses?limit=2"
    seen: list[str] = []
    while url:
        answer = requests.get(url, timeout=5)
        seen += [s["id"] for s in answer.json()]
        url = answer.links.get("next", {}).get("url", "") if answer.json() else ""
    assert seen == list(reversed(ids))


def test_content_is_html_as_mastodon_renders_it(srv: MastodonServer) -> None:
    status = _post(srv, {"status": "A & <b> #COP31\nhttps://www.example.org/a\n\nfin"}).json()
    assert status["content"] == (
        '<p>A &amp; &lt;b&gt; <a href="' + srv.url + '/tags/cop31" class="mention hashtag" '
        'rel="tag">#<span>COP31</span></a><br /><a href="https://www.example.org/a" '
        'target="_blank" rel="nofollow noopener" translate="no"><span class="invisible">'
        'https://www.</span><span class="">example.org/a</span><span class="invisible">'
        "</span></a></p><p>fin</p>"
    )
