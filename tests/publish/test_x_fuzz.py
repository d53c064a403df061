"""Fuzz: whatever X answers, the publisher ends in a Receipt or a PublishError, and the CLI in
a clear message (issue 15: "no traceback ever reaches the user").

Hypothesis draws X's answer (status, headers, body: empty, not JSON, cut off, wrong types,
huge); the fake X serves exactly that to the real publisher, over HTTP.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from example import keep_platforms
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from publish.conftest import ACCOUNTS, APP, ROOT, env_for
from servers.translate import LibreServer
from servers.x import XServer

from bot.errors import PublishAmbiguous, PublishError
from bot.platforms.x import DEADLINE_FACTOR, XCredentials, XPublisher
from bot.publish.base import MediaItem, Outgoing, Receipt
from bot.settings import Secret

# tweepy's bug (a coroutine never awaited, see x.py's docstring) cannot happen: x.py's client
# raises none of tweepy's exceptions. An unawaited coroutine would fail the test.
pytestmark = pytest.mark.filterwarnings(
    "error:coroutine 'ClientResponse.json' was never awaited:RuntimeWarning"
)

FR = "francediplo"
TIMEOUT = 0.5  # the publisher's timeout: a drawn answer that never ends costs little
_texts = itertools.count()

# -- X's answers ----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
IDS = st.one_of(
    st.just("1234567890123456789"),
    st.integers(),
    st.text(max_size=25),
    st.none(),
    st.from_regex(r"[0-9]{1,25}", fullmatch=True),
)
POSTS = st.fixed_dictionaries(
    {},
    optional={
        "id": IDS,
        "text": st.one_of(st.text(max_size=40), JSON_VALUES),
        "username": st.one_of(st.text(max_size=15), JSON_VALUES),
        "deleted": st.one_of(st.booleans(), JSON_VALUES),
        "entities": st.one_of(
            JSON_VALUES,
            st.fixed_dictionaries(
                {
                    "urls": st.lists(
                        st.dictionaries(
                            st.sampled_from(["url", "expanded_url", "media_key", "start"]),
                            JSON_VALUES,
                        ),
                        max_size=3,
                    )
                }
            ),
        ),
        "referenced_tweets": st.one_of(
            JSON_VALUES,
            st.lists(
                st.dictionaries(
                    st.sampled_from(["type", "id"]), st.one_of(st.just("replied_to"), IDS)
                ),
                max_size=2,
            ),
        ),
        "attachments": st.one_of(JSON_VALUES, st.fixed_dictionaries({"media_keys": JSON_VALUES})),
    },
)
DOCUMENTS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({"data": st.one_of(JSON_VALUES, POSTS, st.lists(POSTS, max_size=3))}),
    st.fixed_dictionaries(
        {
            "data": st.lists(POSTS, max_size=2),
            "meta": st.one_of(
                JSON_VALUES,
                st.fixed_dictionaries({"next_token": st.one_of(st.text(max_size=10), JSON_VALUES)}),
            ),
        }
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "title": JSON_VALUES,
            "detail": st.one_of(st.just("duplicate content"), JSON_VALUES),
            "errors": JSON_VALUES,
        },
    ),
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["json", "cut", "empty", "bytes", "html", "huge"]))
    if kind == "empty":
        return b""
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "html":
        return b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    document = json.dumps(draw(DOCUMENTS)).encode()
    if kind == "cut":
        return document[: draw(st.integers(0, max(0, len(document) - 1)))]
    if kind == "huge":  # 2 MB: a valid post drowned in padding
        pad = "x" * 2_000_000
        return json.dumps({"data": {"id": "1234567890123456789", "pad": pad}}).encode()
    return document


STATUSES = st.one_of(
    st.sampled_from([200, 201, 202, 204, 301, 304, 400, 401, 402, 403, 404, 429, 500, 503]),
    st.integers(100, 599),
)
HEADER_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
HEADERS = st.dictionaries(
    st.sampled_from(["x-rate-limit-reset", "Content-Encoding", "Retry-After", "X-Other"]),
    st.one_of(
        HEADER_VALUES,
        st.integers(-(10**20), 10**20).map(str),
        st.just("gzip"),
    ),
    max_size=3,
)
CONTENT_TYPES = st.sampled_from(
    ["application/json; charset=utf-8", "application/problem+json", "text/html", "", "x/y"]
)


@st.composite
def answers(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "status": draw(STATUSES),
        "body": draw(bodies()),
        "headers": draw(HEADERS),
        "content_type": draw(CONTENT_TYPES),
    }


# -- the publisher against the fake ---------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_x() -> Iterator[XServer]:
    with XServer(accounts=ACCOUNTS, consumer=APP) as server:
        yield server


@pytest.fixture(scope="module")
def fuzz_publisher(fuzz_x: XServer) -> XPublisher:
    accounts = {a: XCredentials(Secret(t), Secret(s)) for a, (t, s, _h) in ACCOUNTS.items()}
    handles = {a: h for a, (_t, _s, h) in ACCOUNTS.items()}
    return XPublisher(
        Secret(APP[0]), Secret(APP[1]), accounts, handles, api_url=fuzz_x.url, timeout=TIMEOUT
    )


OPERATIONS = {
    "publish": ("POST", "/2/tweets"),
    "find": ("GET", "/2/users/*/tweets"),
    "delete": ("DELETE", "/2/tweets/*"),
    "whoami": ("GET", "/2/users/me"),
    "upload": ("POST", "/2/media/upload"),
}


def _valid_id(body: bytes) -> str | None:
    try:
        data = json.loads(body)["data"]["id"]
    except (ValueError, KeyError, TypeError):
        return None
    return data if isinstance(data, str) and data.isascii() and data.isdigit() else None


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(operation=st.sampled_from(sorted(OPERATIONS)), answer=answers(), process=st.booleans())
def test_any_answer_of_x_ends_in_a_receipt_or_a_publish_error(
    fuzz_x: XServer,
    fuzz_publisher: XPublisher,
    operation: str,
    answer: dict[str, Any],
    process: bool,
) -> None:
    """publish, find, delete, whoami and an image upload, against any answer: only a Receipt
    (or None, or a handle) or a PublishError comes out, within the deadline; a create whose
    answer gives no post id is ambiguous, never retried blind."""
    fuzz_x.reset()
    method, path = OPERATIONS[operation]
    fuzz_x.answer_next(method=method, path=path, process=process, **answer)
    text = f"Essai {next(_texts)}"
    image = ROOT / "content/media/drapeau.png"
    started = time.monotonic()
    result: Any = None
    try:
        if operation == "publish":
            fuzz_publisher.whoami(FR)  # the account check, answered by X itself
            result = fuzz_publisher.publish(Outgoing(FR, FR, text))
        elif operation == "upload":
            fuzz_publisher.whoami(FR)
            result = fuzz_publisher.publish(Outgoing(FR, FR, text, media=(MediaItem(image, "a"),)))
        elif operation == "find":
            since = datetime.now(UTC) - timedelta(minutes=5)
            result = fuzz_publisher.find(Outgoing(FR, FR, text), since)
        elif operation == "delete":
            result = fuzz_publisher.delete(FR, "1234567890123456789")
        else:
            result = fuzz_publisher.whoami(FR)
    except PublishError as exc:
        assert str(exc)  # a message to show
        if operation == "publish" and 200 <= answer["status"] < 300:
            assert isinstance(exc, PublishAmbiguous), exc  # X may have stored it
        if operation in ("find", "delete", "whoami", "upload"):
            assert not isinstance(exc, PublishAmbiguous), exc  # nothing here makes a post
    else:
        if operation == "publish":
            assert isinstance(result, Receipt)
            assert 200 <= answer["status"] < 300 and result.remote_id == _valid_id(answer["body"])
        elif operation == "find":
            assert result is None or isinstance(result, Receipt)
        elif operation == "whoami":
            assert isinstance(result, str) and result
    # Each request ends by its deadline (an image post makes up to four).
    assert time.monotonic() - started < 4 * DEADLINE_FACTOR * TIMEOUT + 2


# -- the same through the CLI ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_env(fuzz_x: XServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    repo = tmp_path_factory.mktemp("fuzz") / "repo"
    for part in ("content", "schedules"):
        shutil.copytree(ROOT / part, repo / part, symlinks=True)
    keep_platforms(repo, {"x"})  # the accounts the fake X knows
    with LibreServer() as libre:
        env = {**os.environ, **env_for(fuzz_x, libre, DIPLOBOT_X_TIMEOUT=str(TIMEOUT))}
        env["PYTHONPATH"] = str(ROOT)
        yield {"repo": repo, "env": env, "states": itertools.count()}


def _answer(status: int, body: bytes) -> dict[str, Any]:
    return {"status": status, "body": body, "headers": {}, "content_type": "application/json"}


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=answers())
@example(answer=_answer(201, b"{}"))  # X has answered this
@example(answer=_answer(200, b'{"data": null}'))
@example(answer=_answer(500, b"null"))  # tweepy leaves a coroutine unawaited
def test_post_now_shows_a_message_not_a_traceback_whatever_x_answers(
    fuzz_x: XServer, cli_env: dict[str, Any], answer: dict[str, Any]
) -> None:
    """`python -m bot post-now` when X answers the create with anything but a post id (and
    stores nothing): exit 1, the delivery's state and reason on stdout, no traceback."""
    assume(_valid_id(answer["body"]) is None or not 200 <= answer["status"] < 300)
    fuzz_x.reset()
    fuzz_x.answer_next(method="POST", path="/2/tweets", **answer)
    state = cli_env["repo"] / f"state-{next(cli_env['states'])}.sqlite"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "post-now",
            "--root",
            str(cli_env["repo"]),
            "--state",
            str(state),
            "entretien-liban",
            "--lang",
            "fr",
        ],
        env=cli_env["env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in done.stderr and "RuntimeWarning" not in done.stderr, done.stderr
    assert done.returncode == 1, (done.stdout, done.stderr)
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("@francediplo (x): ")]
    assert any(f"part 1 {s}" in line for s in ("PENDING", "FAILED", "UNKNOWN")), line
    assert len(line.split(" ", 5)[-1]) > 10, line  # with its reason
