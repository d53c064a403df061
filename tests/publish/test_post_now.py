"""post-now against the fake X: the right text on the right account, once."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from publish.conftest import ACCOUNTS, APP
from requests_oauthlib import OAuth1
from servers.x import XServer

from bot.cli import main

HANDLES = ["francediplo", "francediplo_EN", "francediplo_AR", "francediplo_ES"]


def test_post_with_image_reaches_every_account_once_with_alt_in_its_language(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """One post per account, in its language, with the image and per-language alt text."""
    assert main(["post-now", "--root", str(repo), "journee-droits-humains"]) == 0
    texts = {}
    for account in HANDLES:
        timeline = live.timeline(account)
        assert len(timeline) == 1, account
        texts[account] = timeline[0]["text"]
        assert len(timeline[0]["media"]) == 1
    assert texts["francediplo"].startswith("Le 10 décembre, Journée des droits de l'Homme.")
    assert texts["francediplo"] != texts["francediplo_ES"] != texts["francediplo_AR"]
    assert all("#DroitsHumains #HumanRightsDay" in t for t in texts.values())
    alts = {a: live.timeline(a)[0]["media"][0]["alt_text"] for a in HANDLES}
    assert (
        alts["francediplo"] == "Drapeau français : trois bandes verticales bleue, blanche et rouge."
    )
    assert alts["francediplo_EN"] == "French flag: three vertical stripes, blue, white and red."
    assert (
        alts["francediplo_ES"] == "Bandera francesa: tres franjas verticales azul, blanca y roja."
    )
    assert alts["francediplo_AR"] and alts["francediplo_AR"] != alts["francediplo"]  # translated
    assert live.errors == []  # every request matched the OpenAPI spec and was signed right


def test_thread_is_a_reply_chain_on_each_account(repo: Path, live: XServer) -> None:
    """The three parts of a thread are posted as replies, in order, on every account."""
    assert main(["post-now", "--root", str(repo), "conference-soudan"]) == 0
    for account in HANDLES:
        timeline = live.timeline(account)
        assert [t["text"][-3:] for t in timeline] == ["1/3", "2/3", "3/3"]
        assert timeline[0]["reply_to"] is None
        assert timeline[1]["reply_to"] == timeline[0]["id"]
        assert timeline[2]["reply_to"] == timeline[1]["id"]
    assert live.errors == []


def test_running_it_again_publishes_nothing_and_says_why(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second post-now is refused per account, with the date and link of the first."""
    assert main(["post-now", "--root", str(repo), "entretien-liban"]) == 0
    capsys.readouterr()
    before = len(live.requests)
    assert main(["post-now", "--root", str(repo), "entretien-liban"]) == 1
    out = capsys.readouterr().out
    assert out.count("already published on") == 4
    assert "https://x.com/francediplo_ES/status/" in out
    assert [r for r in live.requests[before:] if r.method == "POST"] == []
    assert all(len(live.timeline(a)) == 1 for a in HANDLES)


def test_lang_option_limits_the_accounts(repo: Path, live: XServer) -> None:
    """--lang fr,es publishes on those two accounts only."""
    assert main(["post-now", "--root", str(repo), "entretien-liban", "--lang", "fr,es"]) == 0
    assert [len(live.timeline(a)) for a in HANDLES] == [1, 0, 0, 1]


def test_accounts_without_credentials_go_to_the_outbox_loudly(
    repo: Path,
    live: XServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No token for the Arabic account: it is published to the outbox, and stderr says so."""
    monkeypatch.delenv("DIPLOBOT_FRANCEDIPLO_AR_ACCESS_TOKEN")
    assert main(["post-now", "--root", str(repo), "entretien-liban"]) == 0
    captured = capsys.readouterr()
    assert "no X credentials for account 'francediplo_AR': DRY RUN" in captured.err
    assert "DIPLOBOT_FRANCEDIPLO_AR_ACCESS_TOKEN" in captured.err
    assert live.timeline("francediplo_AR") == []
    outbox = (repo / ".diplobot/outbox.jsonl").read_text(encoding="utf-8")
    assert '"account": "francediplo_AR"' in outbox and "لقاء اليوم" in outbox


def test_status_and_retract(repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]) -> None:
    """status lists the POSTED rows with links; retract --yes deletes them from X."""
    assert main(["post-now", "--root", str(repo), "conference-soudan", "--lang", "fr"]) == 0
    capsys.readouterr()
    assert main(["status", "--root", str(repo), "conference-soudan"]) == 0
    out = capsys.readouterr().out
    assert out.count("POSTED") == 3 and "https://x.com/francediplo/status/" in out
    assert main(["retract", "--root", str(repo), "conference-soudan", "--yes"]) == 0
    assert live.timeline("francediplo") == []
    capsys.readouterr()
    main(["status", "--root", str(repo), "conference-soudan"])
    assert capsys.readouterr().out.count("RETRACTED") == 3


def test_retract_of_a_post_already_deleted_on_x(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A part someone already deleted on X (404 on delete) counts as retracted."""
    assert main(["post-now", "--root", str(repo), "conference-soudan", "--lang", "fr"]) == 0
    first = live.timeline("francediplo")[0]["id"]
    token, secret, _handle = ACCOUNTS["francediplo"]
    requests.delete(
        f"{live.url}/2/tweets/{first}", auth=OAuth1(*APP, token, secret), timeout=5
    ).raise_for_status()
    capsys.readouterr()
    assert main(["retract", "--root", str(repo), "conference-soudan", "--yes"]) == 0
    assert live.timeline("francediplo") == []
    main(["status", "--root", str(repo), "conference-soudan"])
    assert capsys.readouterr().out.count("RETRACTED") == 3


def test_retract_without_yes_off_a_terminal_refuses(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a terminal to ask on, retract needs --yes and changes nothing."""
    assert main(["post-now", "--root", str(repo), "entretien-liban", "--lang", "fr"]) == 0
    assert main(["retract", "--root", str(repo), "entretien-liban"]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert len(live.timeline("francediplo")) == 1


def test_accounts_check_reports_each_account(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Working credentials say ok; a handle that differs from accounts.yaml is named."""
    accounts = repo / "schedules/accounts.yaml"
    accounts.write_text(accounts.read_text().replace("handle: francediplo_ES", "handle: otro"))
    assert main(["accounts", "check", "--root", str(repo)]) == 1
    out = capsys.readouterr().out
    assert "francediplo (X): ok (@francediplo)" in out
    assert "credentials belong to @francediplo_ES, but accounts.yaml says @otro" in out
