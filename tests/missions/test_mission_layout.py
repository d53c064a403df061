"""Missions in one repository: each mission's files, its accounts, its posts' ids, and the
errors an editor meets, each at its file:line (through ``diplobot validate``)."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.content.loader import load, validate

MISSION = "missions/ambassade-chine"


def write(repo: Path, rel: str, body: str) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body), encoding="utf-8")


def errors(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(r"^\S+\.yaml:\d+:\d+: ", line)]


def test_the_example_with_two_missions_is_valid(
    full_example: Path, run_cli: Callable[..., Any]
) -> None:
    result = run_cli("validate", "--root", str(full_example))
    assert (result.code, result.out.strip()) == (0, "valid")
    content = load(full_example)
    assert list(content.missions) == ["central", "ambassade-chine"]
    assert content.accounts_of("ambassade-chine").keys() == {
        "ambachine_fr",
        "ambachine_en",
        "ambachine_zh",
    }
    assert "francediplo" in content.accounts_of("central")
    # A mission post's id: the mission, then its path under posts/ without extension.
    entry = content.posts["ambassade-chine/2026/12/visas-etudiants"]
    assert (entry.mission, entry.path) == (
        "ambassade-chine",
        f"{MISSION}/posts/2026/12/visas-etudiants.yaml",
    )
    # Its zone is the mission's (Asia/Shanghai): 10:00 there is 02:00 UTC.
    assert entry.due is not None and entry.due.isoformat() == "2026-12-03T02:00:00+00:00"
    # Its accounts are its mission's only, in every language they publish in.
    assert set(content.publishers_of(entry)) == {"ambachine_fr", "ambachine_en", "ambachine_zh"}


def test_a_post_in_one_mission_naming_another_missions_account_is_an_error(
    full_example: Path, run_cli: Callable[..., Any]
) -> None:
    write(
        full_example,
        f"{MISSION}/posts/vol.yaml",
        """\
        lang: fr
        publish_at: 2026-12-05 10:00
        accounts: [ambachine_fr, francediplo]
        text: Un vol direct Paris-Chengdu ouvre en janvier.
        """,
    )
    result = run_cli("validate", "--root", str(full_example))
    assert result.code == 1
    [line] = errors(result.out)
    # Line 3, column 26: the second item of `accounts:`; the message names where the
    # account is defined (file:line) and what to do.
    assert line.startswith(f"{MISSION}/posts/vol.yaml:3:26: ")
    assert "account 'francediplo' belongs to mission 'central' (schedules/accounts.yaml:8)" in line
    assert "goes only to its mission's accounts (move the post to content/posts/, or name " in line
    # The other way round: a central post naming the mission's account.
    (full_example / f"{MISSION}/posts/vol.yaml").unlink()
    write(
        full_example,
        "content/posts/vol.yaml",
        "lang: fr\npublish_at: 2026-12-05 10:00\naccounts:\n  - ambachine_en\ntext: Un vol.\n",
    )
    result = run_cli("validate", "--root", str(full_example))
    [line] = errors(result.out)
    assert line.startswith(
        "content/posts/vol.yaml:4:5: account 'ambachine_en' belongs to "
        f"mission 'ambassade-chine' ({MISSION}/accounts.yaml:10)"
    )
    assert f"(move the post to {MISSION}/posts/, or name one of: francediplo," in line


def test_an_account_defined_in_two_missions_names_both_places(
    full_example: Path, run_cli: Callable[..., Any]
) -> None:
    accounts = full_example / f"{MISSION}/accounts.yaml"
    accounts.write_text(
        accounts.read_text(encoding="utf-8")
        + "  francediplo_EN: {lang: en, platform: x, handle: Another}\n",
        encoding="utf-8",
    )
    result = run_cli("validate", "--root", str(full_example))
    assert result.code == 1
    [line] = errors(result.out)
    assert line.startswith(
        f"{MISSION}/accounts.yaml:13:3: account 'francediplo_EN' is defined "
        "twice: here and in schedules/accounts.yaml:9 (mission 'central')"
    )
    # Two names that read the same credentials (DIPLOBOT_AMBACHINE_FR_*) across files too.
    accounts.write_text(
        accounts.read_text(encoding="utf-8").replace(
            "  francediplo_EN: {lang: en, platform: x, handle: Another}\n", ""
        ),
        encoding="utf-8",
    )
    central = full_example / "schedules/accounts.yaml"
    central.write_text(
        central.read_text(encoding="utf-8") + "  AmbaChine-FR: {lang: fr, handle: Other}\n",
        encoding="utf-8",
    )
    result = run_cli("validate", "--root", str(full_example))
    [line] = errors(result.out)
    assert line.startswith(
        f"{MISSION}/accounts.yaml:9:3: account 'ambachine_fr' reads the same "
        "credentials as account 'AmbaChine-FR' (schedules/accounts.yaml:21)"
    )


def test_a_post_id_used_in_two_missions_names_both_files_and_lines(
    full_example: Path, run_cli: Callable[..., Any]
) -> None:
    write(full_example, "content/posts/a.yaml", "# one\nid: partage\nlang: fr\ntext: Un\n")
    write(full_example, f"{MISSION}/posts/b.yaml", "lang: fr\nid: partage\ntext: Deux\n")
    result = run_cli("validate", "--root", str(full_example))
    [line] = errors(result.out)
    assert line.startswith(
        f"{MISSION}/posts/b.yaml:2:1: id 'partage' is already used by content/posts/a.yaml:2"
    )
    # A mission's default ids start with its name: a central file in a folder of the same
    # name has the same default id.
    (full_example / "content/posts/a.yaml").unlink()
    (full_example / f"{MISSION}/posts/b.yaml").unlink()
    write(
        full_example,
        "content/posts/ambassade-chine/queue/residence-artistes.yaml",
        "lang: fr\ntext: Un\n",
    )
    result = run_cli("validate", "--root", str(full_example))
    [line] = errors(result.out)
    assert "id 'ambassade-chine/queue/residence-artistes' is already used by" in line


def test_amplify_is_for_central_posts_and_names_missions(
    full_example: Path, run_cli: Callable[..., Any]
) -> None:
    write(
        full_example,
        f"{MISSION}/posts/relais.yaml",
        "lang: fr\npublish_at: 2026-12-05 10:00\ntext: Relais.\namplify: all\n",
    )
    write(
        full_example,
        "content/posts/relais.yaml",
        """\
        lang: fr
        publish_at: 2026-12-05 10:00
        text: Relais.
        amplify:
          missions: [ambassade-chine, ambassade-chien]
        """,
    )
    result = run_cli("validate", "--root", str(full_example))
    assert result.code == 1
    assert errors(result.out) == [
        "content/posts/relais.yaml:5:31: unknown mission 'ambassade-chien' "
        "(did you mean 'ambassade-chine'?)",
        f"{MISSION}/posts/relais.yaml:4:1: only a central post can be amplified; this post "
        "belongs to mission 'ambassade-chine' (remove 'amplify', or move the post to "
        "content/posts/)",
    ]


def test_mission_names_and_mission_only_keys(
    full_example: Path, run_cli: Callable[..., Any]
) -> None:
    shutil.copytree(full_example / MISSION, full_example / "missions/Consulat_Lyon")
    accounts = full_example / f"{MISSION}/accounts.yaml"
    accounts.write_text(
        "mission: chine\npricing: {post: 0.01}\n" + accounts.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    result = run_cli("validate", "--root", str(full_example), "--format", "json")
    found = {
        (p["path"], p["line"], p["message"].split(":")[0])
        for p in json.loads(result.out)["problems"]
    }
    assert (
        "missions/Consulat_Lyon",
        0,
        "'Consulat_Lyon' is not a mission name",
    ) in found
    assert (
        f"{MISSION}/accounts.yaml",
        1,
        "a mission's name is its folder's name; 'mission",
    ) in found
    assert (
        f"{MISSION}/accounts.yaml",
        2,
        "prices are set once for the whole repository, in schedules/accounts.yaml",
    ) in found


def test_validate_mission_shows_that_missions_problems(
    full_example: Path, run_cli: Callable[..., Any]
) -> None:
    write(full_example, f"{MISSION}/posts/x.yaml", "lang: xx\ntext: Un\n")
    write(full_example, "content/posts/y.yaml", "lang: fr\nslot: nowhere\ntext: Deux\n")
    mine = run_cli("validate", "--root", str(full_example), "--mission", "ambassade-chine")
    assert mine.code == 1
    assert [e.split(":")[0] for e in errors(mine.out)] == [f"{MISSION}/posts/x.yaml"]
    assert "1 error(s) in other missions' files" in mine.err
    central = run_cli("validate", "--root", str(full_example), "--mission", "central")
    assert [e.split(":")[0] for e in errors(central.out)] == ["content/posts/y.yaml"]
    as_json = json.loads(
        run_cli(
            "validate", "--root", str(full_example), "--mission", "central", "--format", "json"
        ).out
    )
    assert (as_json["valid"], as_json["errors"], as_json["errors_elsewhere"]) == (False, 1, 1)


def test_a_blackout_in_a_missions_slots_names_only_its_accounts(full_example: Path) -> None:
    slots = full_example / f"{MISSION}/slots.yaml"
    slots.write_text(
        slots.read_text(encoding="utf-8").replace(
            "reason: Spring Festival", "accounts: [francediplo]\n    reason: Spring Festival"
        ),
        encoding="utf-8",
    )
    content, problems = validate(full_example)
    assert content is None
    [problem] = problems
    assert (problem.path, problem.line) == (f"{MISSION}/slots.yaml", 11)
    assert problem.message.startswith(
        "account 'francediplo' belongs to mission 'central' (schedules/accounts.yaml:8)"
    )


def test_a_repository_without_missions_behaves_as_before(
    tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    """The single-mission example of the last release (tests/data/single-mission) gives the
    same `plan` output, byte for byte, as that release gave (tests/data/single-mission.plan.*,
    written by it with these arguments)."""
    data = Path(__file__).resolve().parents[1] / "data"
    repo = tmp_path / "repo"
    shutil.copytree(data / "single-mission", repo)
    args = ("plan", "--root", str(repo), "--state", str(tmp_path / "s.sqlite"))
    window = ("--from", "2026-11-20 08:00", "--days", "40")
    as_json = run_cli(*args, *window, "--format", "json")
    assert as_json.code == 0
    assert as_json.out == (data / "single-mission.plan.json").read_text(encoding="utf-8")
    as_text = run_cli(*args, *window)
    assert as_text.out == (data / "single-mission.plan.txt").read_text(encoding="utf-8")


def test_a_changed_mission_post_is_the_only_file_read_again(
    full_example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's sync: told which paths changed, the loader reads the changed post of
    a mission and nothing else, and finds what reading everything finds; a change to a
    mission's accounts reads every post again."""
    from bot.content import checks
    from bot.content.loader import LoadCache

    cache = LoadCache()
    validate(full_example, cache)
    read: list[str] = []
    real = checks.read_doc

    def counting(base: Path, rel: str, out: Any) -> Any:
        read.append(rel)
        return real(base, rel, out)

    monkeypatch.setattr(checks, "read_doc", counting)
    rel = f"{MISSION}/posts/queue/residence-artistes.yaml"
    (full_example / rel).write_text("lang: fr\nslot: matin\ntext: Autre texte\n", "utf-8")
    found = validate(full_example, cache, changed=[rel])
    assert [r for r in read if r.endswith(".yaml") and "/posts/" in r] == [rel]
    assert found == validate(full_example)
    read.clear()
    accounts = full_example / f"{MISSION}/accounts.yaml"
    accounts.write_text(
        accounts.read_text("utf-8").replace("daily_cap: 4", "daily_cap: 5"), "utf-8"
    )
    found = validate(full_example, cache, changed=[f"{MISSION}/accounts.yaml"])
    assert len([r for r in read if "/posts/" in r]) == 10  # every post file, both missions
    assert found == validate(full_example)
