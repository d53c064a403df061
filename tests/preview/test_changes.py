"""``plan --format markdown --changed-since REF`` (the pull request's comment) and ``preview
--changed-since REF``: what a commit adds, moves or cancels, per account."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from preview.helpers import NOW, ROOT

from bot.content.loader import load
from bot.preview.model import page_name

ADDED = """\
id: nouvelle-annonce
lang: fr
publish_at: 2026-11-27 10:00
text: "Nouvelle annonce : la France salue l'accord. https://www.diplomatie.gouv.fr/fr/"
"""
MOVED = "content/posts/2026/11/entretien-ministre-liban.yaml"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example repository under git, then one commit that adds a post and moves another
    (entretien-liban, a day and an hour later)."""
    path = tmp_path / "desk"
    for part in ("content", "schedules"):
        shutil.copytree(ROOT / part, path / part)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.email", "desk@example.org")
    _git(path, "config", "user.name", "Desk")
    _git(path, "config", "commit.gpgsign", "false")
    _git(path, "add", "-A")
    _git(path, "commit", "-qm", "the example")
    (path / "content/posts/2026/11/nouvelle-annonce.yaml").write_text(ADDED, encoding="utf-8")
    moved = path / MOVED
    text = moved.read_text(encoding="utf-8")
    assert "publish_at: 2026-11-25T15:00+01:00" in text
    moved.write_text(
        text.replace("publish_at: 2026-11-25T15:00+01:00", "publish_at: 2026-11-26T16:00+01:00"),
        encoding="utf-8",
    )
    _git(path, "add", "-A")
    _git(path, "commit", "-qm", "add one, move one")
    return path


def _changes(markdown: str) -> dict[str, set[str]]:
    """Account handle → its change lines ("added `id`", ...), from the Markdown."""
    found: dict[str, set[str]] = {}
    current = None
    for line in markdown.splitlines():
        heading = re.match(r"^\*\*@(\S+)\*\* \(", line)
        if heading:
            current = re.sub(r"\\(.)", r"\1", heading[1])
            found[current] = set()
        elif line.startswith("- ") and current is not None:
            found[current].add(re.sub(r"`: .*", "`", line[2:]))
    return found


def test_plan_markdown_lists_exactly_the_post_added_and_the_post_moved(
    repo: Path, run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    """Every account gets the added post and the moved one, and nothing else; the table counts
    one of each and the cost of the new post (it has a URL: 0.20 on X)."""
    result = run_cli(
        "plan",
        "--root",
        str(repo),
        "--state",
        f"sqlite:///{tmp_path / 'none.sqlite'}",
        "--format",
        "markdown",
        "--changed-since",
        "HEAD~1",
        "--from",
        f"{NOW:%Y-%m-%d %H:%M}",
        "--days",
        "14",
    )
    assert result.code == 0, result.err
    out = result.out
    accounts = load(repo).accounts.accounts
    assert _changes(out) == {
        a.handle: {"added `nouvelle-annonce`", "moved `entretien-liban`"} for a in accounts.values()
    }
    rows = [line for line in out.splitlines() if line.startswith("| @")]
    assert len(rows) == len(accounts) > 4  # X and the other platforms
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:4] == ["1", "1", "0"], row
        # Only X charges: the new post has a URL (0.20); free platforms add nothing.
        assert cells[5].endswith("(+0.20)" if "(X," in cells[0] else "(+0.00)"), row
    # The move, in each account's own time: Paris 15:00 → 16:00 the next day; Beirut +1 h.
    assert "Wed 2026-11-25 15:00 (14:00 UTC) → Thu 2026-11-26 16:00 (15:00 UTC)" in out
    assert "Wed 2026-11-25 16:00 (14:00 UTC) → Thu 2026-11-26 17:00 (15:00 UTC)" in out
    assert not (tmp_path / "none.sqlite").exists()  # nothing saved, no state made


def test_plan_markdown_says_when_nothing_changes(
    repo: Path, run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    """Compared with itself, the schedule has no change."""
    result = run_cli(
        "plan",
        "--root",
        str(repo),
        "--format",
        "markdown",
        "--changed-since",
        "HEAD",
        "--from",
        f"{NOW:%Y-%m-%d %H:%M}",
    )
    assert result.code == 0, result.err
    assert "No delivery is added, moved or cancelled." in result.out
    assert _changes(result.out) == {}


def test_a_ref_that_is_not_a_commit_is_a_usage_error(
    repo: Path, run_cli: Callable[..., Any]
) -> None:
    """A typo in REF says what to do, exit 2."""
    result = run_cli(
        "plan", "--root", str(repo), "--format", "markdown", "--changed-since", "nope~3"
    )
    assert result.code == 2
    assert "'nope~3' is not a commit" in result.err
    assert "fetch-depth: 0" in result.err


def test_preview_changed_since_shows_only_the_changed_posts_and_the_schedule_diff(
    repo: Path, run_cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the two changed posts get pages; the index lists the changes."""
    monkeypatch.setenv("DIPLOBOT_TRANSLATOR", "libre")  # no URL: machine variants wait
    out = tmp_path / "site"
    result = run_cli(
        "preview",
        "--root",
        str(repo),
        "--state",
        f"sqlite:///{tmp_path / 'state.sqlite'}",
        "--out",
        str(out),
        "--changed-since",
        "HEAD~1",
        "--from",
        f"{NOW:%Y-%m-%d %H:%M}",
    )
    assert result.code == 0, result.err
    pages = sorted(p.name for p in out.glob("post-*.html"))
    assert pages == sorted([page_name("nouvelle-annonce"), page_name("entretien-liban")])
    index = (out / "index.html").read_text(encoding="utf-8")
    kinds = re.findall(r'data-kind="(\w+)" data-post="([^"]+)"', index)
    assert sorted(set(kinds)) == [("added", "nouvelle-annonce"), ("moved", "entretien-liban")]
    assert len(kinds) == 2 * len(load(repo).accounts.accounts)  # on every account
    card = (out / page_name("nouvelle-annonce")).read_text(encoding="utf-8")
    assert "awaiting translation" in card  # the translator is not configured: no failure
