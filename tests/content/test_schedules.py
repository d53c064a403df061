"""schedules/accounts.yaml and schedules/slots.yaml: each mistake reported once, where it is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ACCOUNTS = "schedules/accounts.yaml"
SLOTS = "schedules/slots.yaml"
Check = Callable[..., Any]  # the `check` fixture of conftest.py


def edited(repo: Path, rel: str, old: str, new: str) -> dict[str, str]:
    """The file ``rel`` of ``repo`` with ``old`` replaced by ``new`` (which must be there)."""
    text = (repo / rel).read_text(encoding="utf-8")
    assert old in text
    return {rel: text.replace(old, new)}


def test_unknown_default_timezone_is_one_error_not_a_crash(
    example_repo: Path, check: Check
) -> None:
    """A misspelt default zone is reported once; posts and blackouts using it stay quiet."""
    result = check(
        edited(example_repo, ACCOUNTS, "timezone: Europe/Paris", "timezone: Europe/Pari")
    )
    assert result.code == 1
    assert result.only_error() == (
        f"{ACCOUNTS}:4:11",
        "unknown time zone 'Europe/Pari' (use an IANA name like Europe/Paris or Asia/Dubai)",
    )


def test_unknown_account_timezone_is_located_on_its_account(
    example_repo: Path, check: Check
) -> None:
    """An account's own zone is checked and located inside its flow mapping."""
    result = check(edited(example_repo, ACCOUNTS, "Asia/Beirut", "Asia/Beyrouth"))
    assert result.code == 1
    where, text = result.only_error()
    assert where == f"{ACCOUNTS}:10:77"
    assert "unknown time zone 'Asia/Beyrouth'" in text


def test_missing_accounts_file_is_reported(example_repo: Path, check: Check) -> None:
    """Without schedules/accounts.yaml nothing can be published: the file is named as missing."""
    (example_repo / ACCOUNTS).unlink()
    result = check()
    assert result.code == 1
    where, text = result.only_error()
    assert where == ACCOUNTS
    assert "file is missing" in text


@pytest.mark.parametrize(
    ("old", "new", "where", "words"),
    [
        pytest.param(
            "{lang: es, platform: x,",
            "{lang: sp, platform: x,",
            f"{ACCOUNTS}:11:26",
            ["unknown language 'sp'"],
            id="account-language",
        ),
        pytest.param(
            "handle: francediplo_ES}",
            "handle: '@francediplo_ES'}",
            f"{ACCOUNTS}:11:51",
            ["'handle' has an invalid value '@francediplo_ES'", "without @"],
            id="handle-with-at",
        ),
        pytest.param(
            "platform: x, handle: francediplo_ES",
            "platform: myspace, handle: francediplo_ES",
            f"{ACCOUNTS}:11:40",
            ["'platform' must be one of", "not 'myspace'"],
            id="platform",
        ),
    ],
)
def test_bad_account_entry_is_located(
    example_repo: Path, check: Check, old: str, new: str, where: str, words: list[str]
) -> None:
    """A wrong value inside an account is reported at that value."""
    result = check(edited(example_repo, ACCOUNTS, old, new))
    assert result.code == 1
    in_accounts = [(found, text) for found, text in result.errors if found.startswith(ACCOUNTS)]
    assert len(in_accounts) == 1, result.out
    found, text = in_accounts[0]
    assert found == where
    for word in words:
        assert word in text


def test_slot_time_25_00_is_one_error_and_slot_posts_stay_quiet(
    example_repo: Path, check: Check
) -> None:
    """An impossible slot time is reported in slots.yaml, not as 'unknown slot' in every post."""
    result = check(edited(example_repo, SLOTS, "times: [09:30]", "times: [25:00]"))
    assert result.code == 1
    where, text = result.only_error()
    assert where == f"{SLOTS}:7:13"
    assert "'times' has an invalid value '25:00'" in text
    assert "HH:MM" in text


def test_pause_of_an_unknown_account_lists_the_accounts(example_repo: Path, check: Check) -> None:
    """Pausing an account that does not exist is refused and the real accounts are listed."""
    result = check(edited(example_repo, SLOTS, "accounts: []", "accounts: [francediplo_DE]"))
    assert result.code == 1
    where, text = result.only_error()
    assert where == f"{SLOTS}:22:14"
    assert "unknown account 'francediplo_DE'" in text
    assert "francediplo, francediplo_AR, francediplo_EN, francediplo_ES" in text


def test_blackout_ending_before_it_starts_is_refused(example_repo: Path, check: Check) -> None:
    """A blackout whose `until` is before `from` is reported at `until`."""
    result = check(
        edited(example_repo, SLOTS, "until: 2026-12-26 08:00", "until: 2026-12-20 08:00")
    )
    assert result.code == 1
    assert result.only_error() == (f"{SLOTS}:16:12", "until must be after from (check the dates)")


def test_blackout_bound_in_a_dst_gap_is_refused(example_repo: Path, check: Check) -> None:
    """Blackout bounds are one-off local times: one that DST skips is an error, like publish_at."""
    result = check(edited(example_repo, SLOTS, "from: 2026-12-24 18:00", "from: 2026-03-29 02:30"))
    assert result.code == 1
    where, text = result.only_error()
    assert where == f"{SLOTS}:15:11"
    assert "from: 2026-03-29 02:30 does not exist in Europe/Paris" in text


def test_unknown_key_in_slots_suggests_the_closest(example_repo: Path, check: Check) -> None:
    """A typo in slots.yaml gets the same 'did you mean' as in a post."""
    result = check(
        edited(example_repo, SLOTS, "    days: [mon, tue, wed, thu, fri]\n", "    dayz: [mon]\n")
    )
    assert result.code == 1
    assert result.only_error() == (f"{SLOTS}:6:5", "unknown key 'dayz' (did you mean 'days'?)")


def test_blackout_with_an_empty_account_list_is_refused(check) -> None:  # type: ignore[no-untyped-def]
    """`accounts: []` would black out nothing, silently: say so."""
    slots = (
        "slots:\n  morning: {times: [09:30]}\n  evening: {times: [18:30]}\n"
        "blackouts:\n  - from: 2026-12-24 18:00\n    until: 2026-12-26 08:00\n"
        "    reason: Noël\n    accounts: []\n"
    )
    result = check({"schedules/slots.yaml": slots})
    assert result.code == 1
    assert (
        "schedules/slots.yaml:8:15: accounts is empty: this blackout blocks nothing" in result.out
    )
