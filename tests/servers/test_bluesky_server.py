"""The fake PDS (``tests/servers/bluesky.py``) is as strict as a PDS, driven by the real
atproto SDK: what it refuses, with which error, and what it stores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from atproto_client import Client, models
from atproto_client.exceptions import (
    BadRequestError,
    NetworkError,
    RateLimitExceededError,
    RequestException,
    UnauthorizedError,
)

from servers.bluesky import BlueskyServer

HANDLE = "francediplo.bsky.social"
PASSWORD = "app-pass-1"
NOW = "2026-11-24T08:00:00.000Z"


@pytest.fixture
def pds() -> Iterator[BlueskyServer]:
    with BlueskyServer(accounts={"fr": (HANDLE, PASSWORD)}) as server:
        yield server
        assert not server.errors


@pytest.fixture
def client(pds: BlueskyServer) -> Client:
    made = Client(base_url=pds.url)
    made.login(HANDLE, PASSWORD, fetch_bsky_profile=False)
    return made


def create(client: Client, record: dict[str, Any], rkey: str | None = None) -> Any:
    body = {"repo": client._session.did, "collection": "app.bsky.feed.post", "record": record}
    if rkey is not None:
        body["rkey"] = rkey
    return client.invoke_procedure(
        "com.atproto.repo.createRecord",
        data=models.ComAtprotoRepoCreateRecord.Data.model_validate(body),
        input_encoding="application/json",
    ).content


def record(text: str = "Bonjour", **extra: Any) -> dict[str, Any]:
    return {"$type": "app.bsky.feed.post", "text": text, "createdAt": NOW, **extra}


def error_of(raised: pytest.ExceptionInfo[Any]) -> tuple[int, str, str]:
    response = raised.value.response
    return response.status_code, response.content.error, response.content.message


def test_login_and_wrong_password(pds: BlueskyServer) -> None:
    with pytest.raises(UnauthorizedError) as raised:
        Client(base_url=pds.url).login(HANDLE, "wrong", fetch_bsky_profile=False)
    assert error_of(raised) == (401, "AuthenticationRequired", "Invalid identifier or password")
    client = Client(base_url=pds.url)
    client.login(HANDLE, PASSWORD, fetch_bsky_profile=False)
    assert client._base_url == f"{pds.url}/xrpc"  # the DID document's PDS endpoint


def test_no_token_and_a_forged_one_are_refused(pds: BlueskyServer, client: Client) -> None:
    answer = httpx.get(f"{pds.url}/xrpc/com.atproto.server.getSession")
    assert answer.status_code == 401
    assert answer.json() == {
        "error": "AuthenticationRequired",
        "message": "Authentication Required",
    }
    head, body, _sig = client._session.access_jwt.split(".")
    forged = httpx.get(
        f"{pds.url}/xrpc/com.atproto.server.getSession",
        headers={"Authorization": f"Bearer {head}.{body}.AAAA"},
    )
    assert forged.status_code == 400 and forged.json()["error"] == "InvalidToken"
    assert "ratelimit-reset" in forged.headers


def test_refresh_tokens_are_single_use(pds: BlueskyServer, client: Client) -> None:
    old = client._session.refresh_jwt
    client._refresh_and_set_session()
    reused = httpx.post(
        f"{pds.url}/xrpc/com.atproto.server.refreshSession",
        headers={"Authorization": f"Bearer {old}"},
    )
    assert reused.status_code == 400
    assert reused.json() == {"error": "InvalidToken", "message": "Token has been revoked"}


def test_logins_are_rate_limited(pds: BlueskyServer) -> None:
    with BlueskyServer(accounts={"fr": (HANDLE, PASSWORD)}, login_limit=2) as limited:
        for _ in range(2):
            Client(base_url=limited.url).login(HANDLE, PASSWORD, fetch_bsky_profile=False)
        with pytest.raises(RateLimitExceededError) as raised:
            Client(base_url=limited.url).login(HANDLE, PASSWORD, fetch_bsky_profile=False)
        assert raised.value.response.headers["ratelimit-remaining"] == "0"
        assert int(raised.value.response.headers["ratelimit-reset"]) > 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (record("x" * 3001), "3000"),
        (record("é" * 301), "300 graphemes"),
        (record(createdAt="yesterday"), "createdAt"),
        (record(langs=["fr", "en", "ar", "es"]), "langs"),
        (
            record(
                "Bonjour",
                facets=[
                    {
                        "index": {"byteStart": 2, "byteEnd": 9},
                        "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "x"}],
                    }
                ],
            ),
            "past the end",
        ),
        (
            record(
                "Bonjour",
                facets=[
                    {
                        "index": {"byteStart": 3, "byteEnd": 3},
                        "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "x"}],
                    }
                ],
            ),
            "byteStart < byteEnd",
        ),
        (
            record(
                reply={
                    "parent": {"uri": "at://did:plc:x/app.bsky.feed.post/3jzfcijpj2z2a", "cid": "b"}
                }
            ),
            "root",
        ),
        (record(embed={"$type": "app.bsky.embed.images", "images": []}), "1 to 4"),
    ],
)
def test_invalid_records_are_refused(
    pds: BlueskyServer, client: Client, bad: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadRequestError) as raised:
        create(client, bad)
    status, error, text = error_of(raised)
    assert (status, error) == (400, "InvalidRequest") and message in text
    assert pds.posts("fr") == [] and pds.rejections


def test_a_reply_must_name_existing_posts_with_their_cids(
    client: Client, pds: BlueskyServer
) -> None:
    first = create(client, record("1/2"))
    ref = {"uri": first["uri"], "cid": first["cid"]}
    with pytest.raises(BadRequestError, match="cid does not match"):
        create(client, record("2/2", reply={"root": ref, "parent": {**ref, "cid": "bafyreiother"}}))
    create(client, record("2/2", reply={"root": ref, "parent": ref}))
    assert pds.posts("fr")[1]["reply"] == {"root": first["uri"], "parent": first["uri"]}


def test_record_keys_must_be_tids_and_a_taken_one_is_a_500(client: Client) -> None:
    with pytest.raises(BadRequestError, match="not a TID"):
        create(client, record(), rkey="my-post")
    create(client, record(), rkey="3jzfcijpj2z2a")
    with pytest.raises(RequestException) as raised:
        create(client, record("Encore"), rkey="3jzfcijpj2z2a")
    assert error_of(raised) == (500, "InternalServerError", "Internal Server Error")


def test_blobs_over_the_image_limit_are_refused_in_the_record(
    pds: BlueskyServer, client: Client
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 1_000_001
    blob = client.com.atproto.repo.upload_blob(png).blob
    image = {
        "alt": "",
        "image": {
            "$type": "blob",
            "ref": {"$link": blob.ref.link},
            "mimeType": "image/png",
            "size": len(png),
        },
    }
    with pytest.raises(BadRequestError, match="too big"):
        create(client, record(embed={"$type": "app.bsky.embed.images", "images": [image]}))
    with BlueskyServer(accounts={"fr": (HANDLE, PASSWORD)}, upload_limit=10) as small:
        tiny = Client(base_url=small.url)
        tiny.login(HANDLE, PASSWORD, fetch_bsky_profile=False)
        with pytest.raises(NetworkError) as raised:  # the SDK's class for a 413
            tiny.com.atproto.repo.upload_blob(png)
        assert error_of(raised)[:2] == (413, "PayloadTooLarge")


def test_list_records_pages_by_key_newest_first(pds: BlueskyServer, client: Client) -> None:
    made = [create(client, record(f"n{n}"))["uri"] for n in range(5)]
    params = {"repo": HANDLE, "collection": "app.bsky.feed.post", "limit": 2}
    seen: list[str] = []
    cursor = None
    while True:
        page = client.invoke_query(
            "com.atproto.repo.listRecords",
            params=models.ComAtprotoRepoListRecords.Params(**params, cursor=cursor),
        ).content
        seen += [r["uri"] for r in page["records"]]
        cursor = page.get("cursor")
        if not cursor:
            break
    assert seen == list(reversed(made))
    with pytest.raises(BadRequestError) as raised:
        client.invoke_query(
            "com.atproto.repo.getRecord",
            params=models.ComAtprotoRepoGetRecord.Params(
                repo=HANDLE, collection="app.bsky.feed.post", rkey="3jzfcijpj2z2a"
            ),
        )
    assert error_of(raised)[:2] == (400, "RecordNotFound")


def test_a_json_body_must_say_it_is_json(pds: BlueskyServer, client: Client) -> None:
    answer = httpx.post(
        f"{pds.url}/xrpc/com.atproto.repo.createRecord",
        content=b'{"repo": "x"}',
        headers={
            "Authorization": f"Bearer {client._session.access_jwt}",
            "Content-Type": "text/plain",
        },
    )
    assert answer.status_code == 400
    assert answer.json()["message"] == "Wrong request encoding (Content-Type): text/plain"
