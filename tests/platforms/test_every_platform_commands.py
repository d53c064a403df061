"""``accounts check``, ``post-now``, ``status``, ``retract`` and the alerts name each account's
platform, whatever it is, and ``accounts check`` adds a publisher's own checks (``check``).

The X accounts of the example go to the fake X. A fifth account, on Mastodon, goes through
the platform registry to :class:`Elsewhere`, the dry-run outbox under Mastodon's name: these
tests are about the commands, which see a publisher only through the registry and the
``Publisher`` protocol (each platform's own publisher has its contract suite,
``test_publisher_contract.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from publish.conftest import WebhookSink, env_for
from servers.translate import LibreServer
from servers.x import XServer

from bot.envname import env_name
from bot.errors import PublishError, PublishRejected
from bot.platforms import MASTODON, PLATFORMS
from bot.platforms.outbox import OutboxPublisher
from bot.publish.base import AccountCheck, Outgoing, Receipt
from bot.settings import Settings

MASTO = "diplo_masto"
MASTO_HANDLE = "diplomatie_fr"
TOKEN = f"DIPLOBOT_{env_name(MASTO)}_ACCESS_TOKEN"
POST = "entretien-liban"  # a French post with human translations: no translator involved


class Elsewhere(OutboxPublisher):
    """The outbox under Mastodon's name, with the optional ``check`` of a publisher, which
    can be told to refuse posts or to fail its check."""

    name = "mastodon"

    def __init__(self, path: Path, handles: dict[str, str], how: Behaviour) -> None:
        super().__init__(path, handles)
        self.how = how

    def publish(self, item: Outgoing) -> Receipt:
        if self.how.refuse:
            try:
                raise ValueError("422 Unprocessable Entity")
            except ValueError as exc:
                raise PublishRejected(
                    "Mastodon refused the post (422): Validation failed: Text character limit "
                    "of 500 exceeded"
                ) from exc
        return super().publish(item)

    def check(self, account: str) -> list[str]:
        if self.how.check_fails:
            raise PublishError("could not read https://social.example/api/v2/instance: 503")
        return list(self.how.warnings)


@dataclass
class Behaviour:
    warnings: list[str] = field(default_factory=list)
    refuse: bool = False
    check_fails: bool = False
    made: list[Elsewhere] = field(default_factory=list)


@dataclass(frozen=True)
class _Settings:
    missing: Mapping[str, str]


@pytest.fixture
def live(x: XServer, libre: LibreServer, monkeypatch: pytest.MonkeyPatch) -> XServer:
    """The fake X, with credentials set for the example's four X accounts."""
    for key, value in env_for(x, libre).items():
        monkeypatch.setenv(key, value)
    return x


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookSink]:
    sink = WebhookSink()
    monkeypatch.setenv("DIPLOBOT_ALERT_WEBHOOK", sink.url)
    yield sink
    sink.close()


@pytest.fixture
def masto(
    repo: Path, live: XServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Behaviour]:
    """A Mastodon account in the example (French, beside the X one), its token set, its
    registry entry publishing to :class:`Elsewhere`."""
    accounts = repo / "schedules/accounts.yaml"
    accounts.write_text(
        accounts.read_text(encoding="utf-8")
        + f"  {MASTO}: {{lang: fr, platform: mastodon, handle: {MASTO_HANDLE}, "
        'instance: "https://social.example"}\n',
        encoding="utf-8",
    )
    how = Behaviour()

    def settings(process: Settings, ids: list[str]) -> _Settings:
        wanted = {a: f"DIPLOBOT_{env_name(a)}_ACCESS_TOKEN" for a in ids}
        return _Settings({a: v for a, v in wanted.items() if v not in process.platform_env})

    def publisher(_settings: Any, accounts: Mapping[str, Any]) -> Elsewhere:
        made = Elsewhere(
            tmp_path / "mastodon.jsonl", {a: acct.handle for a, acct in accounts.items()}, how
        )
        how.made.append(made)
        return made

    monkeypatch.setitem(
        PLATFORMS, "mastodon", replace(MASTODON, publisher=publisher, settings=settings)
    )
    monkeypatch.setenv(TOKEN, "masto-token-CANARY-4f5e")
    yield how


def test_the_outbox_stand_in_has_the_optional_check() -> None:
    """What ``accounts check`` relies on: the optional protocol tells the two apart."""
    assert not isinstance(OutboxPublisher(Path("unused")), AccountCheck)
    assert isinstance(Elsewhere(Path("unused"), {}, Behaviour()), AccountCheck)


def test_accounts_check_names_each_platform_and_adds_its_own_warnings(
    repo: Path, masto: Behaviour, run_cli: Callable[..., Any]
) -> None:
    """X's accounts are asked who they are on X; the Mastodon one on its platform, and its
    publisher's warnings follow; warnings alone are no failure."""
    masto.warnings = ["the instance allows 1000 characters, diplobot plans with 500"]
    result = run_cli("accounts", "check", "--root", str(repo))
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    assert "francediplo (X): ok (@francediplo)" in lines
    assert "francediplo_AR (X): ok (@francediplo_AR)" in lines
    assert f"{MASTO} (Mastodon): ok (@{MASTO_HANDLE})" in lines
    assert f"{MASTO} (Mastodon): WARNING: {masto.warnings[0]}" in lines
    assert len(lines) == 6


def test_accounts_check_fails_when_a_platforms_own_check_cannot_tell(
    repo: Path, masto: Behaviour, run_cli: Callable[..., Any]
) -> None:
    masto.check_fails = True
    result = run_cli("accounts", "check", "--root", str(repo))
    assert result.code == 1
    assert (
        f"{MASTO} (Mastodon): FAILED: could not read https://social.example/api/v2/instance: 503"
        in result.out.splitlines()
    )
    assert "francediplo (X): ok (@francediplo)" in result.out


def test_accounts_check_says_which_variable_a_platforms_account_lacks(
    repo: Path,
    masto: Behaviour,
    run_cli: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TOKEN)
    result = run_cli("accounts", "check", "--root", str(repo))
    assert result.code == 1
    assert f"{MASTO} (Mastodon): no credentials (set {TOKEN})" in result.out.splitlines()
    assert masto.made == []  # no publisher is built for an account without credentials


def test_an_alert_names_the_accounts_platform(
    repo: Path,
    masto: Behaviour,
    webhook: WebhookSink,
    run_cli: Callable[..., Any],
    live: XServer,
) -> None:
    """Mastodon refuses the post: the alert says it is the account on Mastodon, with the
    platform as a field; the X account's post went out without an alert."""
    masto.refuse = True
    result = run_cli("post-now", "--root", str(repo), POST, "--lang", "fr")
    assert result.code == 1
    assert len(live.timeline("francediplo")) == 1
    (alert,) = webhook.received
    assert alert["text"].startswith(
        f"diplobot: {POST} part 1 for @{MASTO_HANDLE} on Mastodon is FAILED: Mastodon refused"
    )
    assert alert["platform"] == "mastodon" and alert["account"] == MASTO


def test_status_and_retract_cover_a_platform_beside_x(
    repo: Path, masto: Behaviour, run_cli: Callable[..., Any], live: XServer
) -> None:
    """The post goes to X and to Mastodon; status lists both channels; retract deletes both."""
    assert run_cli("post-now", "--root", str(repo), POST, "--lang", "fr").code == 0
    (elsewhere,) = masto.made
    (record,) = elsewhere.records()
    assert record["account"] == MASTO and record["lang"] == "fr"
    assert record["key"] == f"{POST}#1@{MASTO}"

    status = run_cli("status", "--root", str(repo), POST)
    rows = [line for line in status.out.splitlines() if f"{POST} part 1" in line]
    assert len(rows) == 2
    assert any(f"{MASTO} [mastodon]  POSTED" in line for line in rows)
    assert any("francediplo [x]  POSTED" in line for line in rows)

    result = run_cli("retract", "--root", str(repo), POST, "--lang", "fr", "--yes")
    assert result.code == 0, result.out
    assert f"{MASTO} [mastodon]: deleted {record['id']}" in result.out
    assert live.timeline("francediplo") == []
    (after,) = masto.made[1:]  # retract built its own publisher, reading the same file
    assert after.records() == []
