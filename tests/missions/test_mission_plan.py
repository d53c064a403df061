"""Planning with missions: each mission's accounts, slots, blackouts, pauses and glossary;
amplification by repost or copy; ``plan --mission``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from servers.translate import LibreServer
from translate.conftest import KEY, make_backend

from bot.content.loader import load
from bot.pipeline import rows
from bot.schedule.plan import plan
from bot.state import open_store, state_url
from bot.translate.localize import localize

MISSION = "missions/ambassade-chine"
NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
MINE = {"ambachine_fr", "ambachine_en", "ambachine_zh"}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_plan_mission_shows_only_that_missions_accounts(
    full_example: Path, run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    base = ("plan", "--root", str(full_example), "--state", str(tmp_path / "s.sqlite"))
    window = ("--from", "2026-11-20 08:00", "--days", "40")
    result = run_cli(*base, *window, "--format", "json", "--mission", "ambassade-chine")
    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert shown["mission"] == "ambassade-chine"
    assert {d["account"] for d in shown["deliveries"]} == MINE
    assert {d["mission"] for d in shown["deliveries"]} == {"ambassade-chine"}
    assert {c["account"] for c in shown["cost"]["per_day"]} <= MINE
    text = run_cli(*base, *window, "--mission", "ambassade-chine").out
    handles = {line.split()[0] for line in text.splitlines() if line.startswith("@")}
    assert handles == {"@AmbaFranceChine", "@FranceinChina", "@faguodashiguan"}
    assert "bilan-cop31  ↻ repost of francediplo" in text
    # The central mission's view has none of them; all missions' has both.
    central = json.loads(run_cli(*base, *window, "--format", "json", "--mission", "central").out)
    assert not {d["account"] for d in central["deliveries"]} & MINE
    every = json.loads(run_cli(*base, *window, "--format", "json").out)
    assert len(every["deliveries"]) == len(central["deliveries"]) + len(shown["deliveries"])
    unknown = run_cli(*base, "--mission", "consulat-lyon")
    assert unknown.code == 2
    assert "--mission consulat-lyon: no such mission; missions: central, ambassade-chine" in (
        unknown.err
    )


def test_amplify_reposts_where_the_platform_can_and_copies_elsewhere(full_example: Path) -> None:
    content = load(full_example)
    result = plan(content, NOW, days=40)
    central_due = {d.account: d.due for d in result.deliveries if d.post == "bilan-cop31"}
    amplified = {
        d.account: d for d in result.deliveries if d.post == "bilan-cop31" and d.account in MINE
    }
    # X: a repost of the central X account's post in the same language, at its time.
    assert amplified["ambachine_fr"].repost_of == "bilan-cop31#1@francediplo"
    assert amplified["ambachine_en"].repost_of == "bilan-cop31#1@francediplo_EN"
    assert amplified["ambachine_fr"].due == central_due["francediplo"]
    # Weibo cannot repost: a copy in the account's language, machine-translated.
    copy = amplified["ambachine_zh"]
    assert (copy.repost_of, copy.source, copy.lang) == (None, "machine", "zh-Hans")
    # how: copy: every mission account publishes a copy of its own.
    post = full_example / "content/posts/2026/11/bilan-cop31.yaml"
    _edit(post, "amplify: all", "amplify: {missions: [ambassade-chine], how: copy}")
    copied = plan(load(full_example), NOW, days=40)
    mine = {
        d.account: d for d in copied.deliveries if d.post == "bilan-cop31" and d.account in MINE
    }
    assert set(mine) == MINE and all(d.repost_of is None for d in mine.values())
    assert mine["ambachine_en"].source == "human"  # the post's own English translation


def test_a_repost_falls_back_to_the_central_account_on_the_same_platform(
    full_example: Path,
) -> None:
    """A mission's German X account: no central German X account, so it reposts the central
    mission's first X account publishing the post; languages: restricts copies, not reposts."""
    _edit(
        full_example / f"{MISSION}/accounts.yaml",
        "  ambachine_en:",
        "  ambachine_de: {lang: de, platform: x, handle: FrankreichChina}\n  ambachine_en:",
    )
    _edit(
        full_example / "content/posts/2026/11/bilan-cop31.yaml",
        "amplify: all",
        "amplify: all\nlanguages: [fr, en]",
    )
    result = plan(load(full_example), NOW, days=40)
    got = {d.account: d.repost_of for d in result.deliveries if d.post == "bilan-cop31"}
    assert got["ambachine_de"] == "bilan-cop31#1@francediplo"
    assert "ambachine_zh" not in got  # a copy in zh-Hans: not among the post's languages


def test_each_missions_slots_blackouts_and_pause_apply_to_its_accounts_only(
    full_example: Path, run_cli: Callable[..., Any]
) -> None:
    slots = full_example / f"{MISSION}/slots.yaml"
    _edit(
        slots,
        "  - from: 2027-02-16 00:00",
        "  - from: 2026-11-24 00:00\n    until: 2026-11-25 00:00\n    reason: a visit\n"
        "  - from: 2027-02-16 00:00",
    )
    _edit(slots, "pause:\n  all: false", "pause:\n  accounts: [ambachine_en]\n  reason: new team")
    result = plan(load(full_example), NOW, days=40)
    by = {(d.post, d.account): d for d in result.deliveries}
    # The mission's blackout (Beijing time) holds its accounts' deliveries, not the central's.
    assert by[("bilan-cop31", "ambachine_fr")].status == "blackout"
    assert by[("bilan-cop31", "ambachine_fr")].note == "a visit"
    assert by[("bilan-cop31", "francediplo")].status == "scheduled"
    # Its pause: its own account only.
    assert by[("ambassade-chine/2026/12/visas-etudiants", "ambachine_en")].status == "paused"
    assert by[("ambassade-chine/2026/12/visas-etudiants", "ambachine_en")].note == "new team"
    assert all(d.status != "paused" for d in result.deliveries if d.account not in MINE)
    # Its slot `matin` is 09:00 in Beijing, on the next weekday (Monday 23 November).
    slot = by[("ambassade-chine/queue/residence-artistes", "ambachine_fr")]
    assert (slot.slot, slot.due.isoformat()) == ("matin", "2026-11-23T01:00:00+00:00")
    # The mission's slots are its own: a central post cannot take `matin`.
    (full_example / "content/posts/matin.yaml").write_text(
        "lang: fr\nslot: matin\ntext: Bonjour\n", encoding="utf-8"
    )
    check = run_cli("validate", "--root", str(full_example))
    assert "content/posts/matin.yaml:2:7: unknown slot 'matin'" in check.out


@pytest.fixture
def libre() -> Iterator[LibreServer]:
    with LibreServer(api_key=KEY) as server:
        yield server


def test_a_missions_glossary_applies_to_its_accounts_only(
    full_example: Path, libre: LibreServer
) -> None:
    """The central post bilan-cop31 goes to two Weibo accounts in zh-Hans: the central one
    (the central glossary's rendering) and, as the mission's copy, the embassy's (the
    mission's glossary overrides that term)."""
    content = load(full_example)
    cache = open_store(state_url(full_example, None)).translations
    loc = localize(content, make_backend("libre", libre), cache, post_ids=["bilan-cop31"])
    result = plan(content, NOW, days=40)
    wanted = [d for d in result.deliveries if d.post == "bilan-cop31"]
    channels = {a: "outbox" for a in content.accounts.accounts}
    made = {r.account: r for r in rows(content, wanted, loc.variants, channels)}
    central = made["ambafrance_chine"].rows[0].text
    mission = made["ambachine_zh"].rows[0].text
    assert "法国欧洲和外交部" in central and "法国外交部" not in central
    assert "法国外交部" in mission and "法国欧洲和外交部" not in mission
    # Other accounts are unchanged by the mission's glossary: Spanish is the central one's.
    assert "Ministerio de Europa y Asuntos Exteriores" in made["francediplo_ES"].rows[0].text
    # A repost has no row of text (the repost helper records it).
    assert "ambachine_fr" not in made


def test_post_now_of_a_mission_post_goes_to_its_accounts_only(
    full_example: Path,
    run_cli: Callable[..., Any],
    libre: LibreServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIPLOBOT_TRANSLATOR", "libre")
    monkeypatch.setenv("DIPLOBOT_TRANSLATOR_URL", libre.url)
    monkeypatch.setenv("DIPLOBOT_TRANSLATOR_KEY", KEY)
    post = "ambassade-chine/2026/12/visas-etudiants"
    result = run_cli("post-now", post, "--dry-run", "--root", str(full_example))
    assert result.code == 0, result.out + result.err
    outbox = full_example / ".diplobot/outbox.jsonl"
    sent = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    assert {s["account"] for s in sent} == MINE
    zh = next(s for s in sent if s["account"] == "ambachine_zh")
    assert zh["text"].startswith("🎓 中国学生")  # the human translation


def test_post_now_of_an_amplified_central_post_reposts_after_the_originals(
    full_example: Path,
    run_cli: Callable[..., Any],
    libre: LibreServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``post-now bilan-cop31``: the central accounts publish it, the embassy's X accounts
    repost the central X posts in their languages, its Weibo account gets a copy."""
    monkeypatch.setenv("DIPLOBOT_TRANSLATOR", "libre")
    monkeypatch.setenv("DIPLOBOT_TRANSLATOR_URL", libre.url)
    monkeypatch.setenv("DIPLOBOT_TRANSLATOR_KEY", KEY)
    result = run_cli("post-now", "bilan-cop31", "--dry-run", "--root", str(full_example))
    assert result.code == 0, result.out + result.err
    outbox = full_example / ".diplobot/outbox.jsonl"
    sent = {}
    for line in outbox.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        sent[record["account"]] = record
    assert sent["ambachine_fr"]["repost_of"] == sent["francediplo"]["id"]
    assert sent["ambachine_en"]["repost_of"] == sent["francediplo_EN"]["id"]
    assert "repost_of" not in sent["ambachine_zh"] and "法国外交部" in sent["ambachine_zh"]["text"]


def test_a_slot_of_the_same_name_in_two_missions_is_two_slots(full_example: Path) -> None:
    """Each mission's `morning` has its own capacity: a central post and a mission's post
    both take the first occurrence, at the same wall time."""
    _edit(
        full_example / f"{MISSION}/slots.yaml",
        "slots:\n",
        "slots:\n  morning:\n    times: [09:30]\n    timezone: Europe/Paris\n",
    )
    (full_example / f"{MISSION}/posts/matinal.yaml").write_text(
        "lang: fr\nslot: morning\ntext: Bonjour de Pékin\n", encoding="utf-8"
    )
    result = plan(load(full_example), NOW, days=10)
    firsts = {
        d.post: d.due
        for d in result.deliveries
        if d.slot == "morning" and d.account in ("francediplo", "ambachine_fr")
    }
    assert firsts == {
        "queue/bourses-francophonie": datetime(2026, 11, 20, 8, 30, tzinfo=UTC),
        "ambassade-chine/matinal": datetime(2026, 11, 20, 8, 30, tzinfo=UTC),
    }
