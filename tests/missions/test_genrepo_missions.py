"""bench/genrepo.py --missions: a valid repository of many missions for the scale figures."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from bot.content.loader import load
from bot.schedule.plan import plan

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.genrepo import generate


def test_generated_missions_are_valid_and_spread_the_posts(tmp_path: Path) -> None:
    repo = generate(tmp_path / "repo", 2400, missions=12)
    content = load(repo)
    assert len(content.missions) == 13
    # The example's 9 central accounts; 3 per mission, 4 for 184 in 269 of them (1,000 in
    # all at 269 missions).
    per_mission = [len(content.accounts_of(m)) for m in content.missions if m != "central"]
    assert set(per_mission) <= {3, 4} and sum(per_mission) >= 36
    assert len(content.accounts.accounts) == 9 + sum(per_mission)
    assert len(content.posts) == 2400
    central = [e for e in content.posts.values() if e.mission == "central"]
    assert len(central) == 240
    assert all(e.id.startswith(f"{e.mission}/") for e in content.posts.values() if e not in central)
    # Some central posts are amplified by every mission: reposts (X) and copies.
    by_all = {e.id for e in central if e.post.amplify == "all" and e.due is not None}
    assert by_all
    result = plan(content, datetime(2026, 11, 24, tzinfo=UTC), days=366)
    assert by_all == {d.post for d in result.deliveries if d.repost_of}
    assert {content.mission_of(d.account) for d in result.deliveries} == set(content.missions)


def test_validate_on_two_cores_finds_what_one_finds_with_missions(tmp_path: Path) -> None:
    """``validate --jobs 2`` forks a checker for half the post files, across missions: the
    same problems, in the same order, as one process."""
    from bot.content.loader import PARALLEL_MIN_FILES, check

    repo = generate(tmp_path / "repo", PARALLEL_MIN_FILES + 200, missions=5)
    mission_post = next((repo / "missions/ambassade-004/posts").rglob("*.yaml"))
    mission_post.write_text("lang: fr\naccounts: [francediplo]\ntext: Un\n", encoding="utf-8")
    (repo / "content/posts/000/post-00003.yaml").write_text("lang: xx\ntext: Deux\n", "utf-8")
    one, two = check(repo, jobs=1), check(repo, jobs=2)
    assert one == two
    assert not one[0] and len(one[1]) == 2
