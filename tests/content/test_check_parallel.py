"""`check`, the path of `diplobot validate`: the same verdict and problems as `validate`, in
the same order, whether the post files are checked in one process or two."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from content.conftest import write

from bot.content import loader
from bot.content.loader import check, validate

VALID = "lang: fr\npublish_at: 2026-12-0{day} 10:00\ntext: Texte {n}\n"


def _fill(repo: Path, count: int, *, broken: bool) -> None:
    for n in range(count):
        write(repo, f"content/posts/gen/p{n:03d}.yaml", VALID.format(day=1 + n % 9, n=n))
    if not broken:
        return
    # Problems in both halves, a duplicate id across them, a syntax error, a long text, a cut.
    write(repo, "content/posts/gen/p001.yaml", "lang: xx\ntext: Un\n")
    write(repo, "content/posts/gen/p002.yaml", "id: twice\nlang: fr\ntext: Deux\n")
    write(repo, "content/posts/gen/p030.yaml", "id: twice\nlang: fr\ntext: Trois\n")
    write(repo, "content/posts/gen/p031.yaml", "lang: fr\ntext: [Quatre\n")
    write(repo, "content/posts/gen/p032.yaml", "lang: fr\ntext: '" + "x" * 400 + "'\n")
    write(repo, "content/posts/gen/p033.yaml", "lang: fr\ntext: Ouverture de la #COP31\n")


@pytest.mark.parametrize("broken", [False, True])
@pytest.mark.parametrize("jobs", [1, 2])
def test_check_says_what_validate_says(
    example_repo: Path, monkeypatch: pytest.MonkeyPatch, broken: bool, jobs: int
) -> None:
    _fill(example_repo, 40, broken=broken)
    content, problems = validate(example_repo)
    monkeypatch.setattr(loader, "PARALLEL_MIN_FILES", 4)
    assert check(example_repo, jobs=jobs) == (content is not None, problems)
    assert bool(problems) == broken


def test_a_failed_child_is_replaced_by_checking_its_half_here(
    example_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(example_repo, 40, broken=True)
    expected = validate(example_repo)
    monkeypatch.setattr(loader, "PARALLEL_MIN_FILES", 4)

    def fail(*_: object, **__: object) -> bytes:
        raise RuntimeError("the child cannot send its results")

    monkeypatch.setattr(pickle, "dumps", fail)  # the forked child inherits it
    assert check(example_repo, jobs=2) == (expected[0] is not None, expected[1])


def test_validate_command_forks_only_for_many_files(
    example_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", counting_fork)
    _fill(example_repo, 10, broken=False)
    assert check(example_repo, jobs=2)[0]
    assert forks == []
    monkeypatch.setattr(loader, "PARALLEL_MIN_FILES", 4)
    assert check(example_repo, jobs=2)[0]
    assert forks == [1]
