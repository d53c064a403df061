"""Re-checking only what git says changed (the service's sync) finds exactly what checking
every file finds: the same content, the same problems in the same order, commit after commit —
edits, new and deleted posts, renames, folders, schedules, an invalid revision, and files put
into the checkout by hand."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from content.conftest import write

from bot.content import checks, loader
from bot.content.loader import LoadCache, validate
from bot.content.report import Collector
from bot.content.types import Layout
from bot.source import GitSource

POST = "lang: fr\npublish_at: 2026-12-0{day} 10:00\ntext: Texte {n}\n"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


def _commit(origin: Path) -> None:
    _git(origin, "add", "-A")
    _git(origin, "commit", "-qm", "change", "--allow-empty")


@pytest.fixture
def origin(example_repo: Path) -> Path:
    for n in range(30):
        write(example_repo, f"content/posts/gen/p{n:02d}.yaml", POST.format(day=1 + n % 9, n=n))
    _git(example_repo, "init", "-q", "-b", "main")
    _commit(example_repo)
    return example_repo


def _edit(origin: Path, rel: str, body: str | None) -> None:
    if body is None:
        os.unlink(origin / rel)
    else:
        write(origin, rel, body)


# Each step: files written (None: deleted) in the origin, then a commit.
STEPS: list[dict[str, str | None]] = [
    {"content/posts/gen/p03.yaml": POST.format(day=4, n="modifié")},
    {"content/posts/gen/p04.yaml": None, "content/posts/new/deep/n1.yaml": POST.format(day=2, n=1)},
    {"content/posts/gen/p05.yaml": "lang: xx\ntext: Invalide\n"},  # an invalid revision
    {"content/posts/gen/p05.yaml": POST.format(day=5, n=5)},
    {"content/posts/gen/p06.yaml": "id: p07\nlang: fr\ntext: Doublon\n"},  # duplicate id
    {"content/posts/gen/p06.yaml": None},
    {"content/posts/gen/p08.yaml": None, "content/posts/gen/p8.yaml": POST.format(day=8, n=8)},
    {"content/posts/gen/p03a.yaml": POST.format(day=3, n="inséré")},  # in the middle
    {"content/posts/gen/p02.yaml": "id: renamed\n" + POST.format(day=2, n=2)},  # another id
    {"content/posts/gen/p10.yaml": "lang: fr\ntext: Brouillon\n"},  # a draft now
    {"schedules/accounts.yaml": None},  # the context changes: everything is checked again
    {"content/posts/gen/p09.yml": POST.format(day=9, n=9), "content/posts/gen/notes.txt": "x"},
    {"content/posts/.hidden/p.yaml": POST.format(day=1, n=0)},
    {},
]


def test_changed_only_checks_equal_checking_every_file(
    origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = (origin / "schedules/accounts.yaml").read_text(encoding="utf-8")
    source = GitSource(str(origin), "main", tmp_path / "checkout")
    cache = LoadCache()
    read: list[str] = []
    real_read_doc = checks.read_doc

    def counting_read_doc(base: Path, rel: str, out: object) -> object:
        read.append(rel)
        return real_read_doc(base, rel, out)  # type: ignore[arg-type]

    monkeypatch.setattr(checks, "read_doc", counting_read_doc)
    walks: list[int] = []
    real_post_files = loader._post_files

    def counting_post_files(base: Path, out: Collector, layouts: list[Layout]) -> Iterator[str]:
        walks.append(1)
        return real_post_files(base, out, layouts)

    monkeypatch.setattr(loader, "_post_files", counting_post_files)
    patched: list[bool] = []
    real_patched = loader._patched

    def counting_patched(*args: object) -> object:
        found = real_patched(*args)  # type: ignore[arg-type]
        patched.append(found is not None)
        return found

    monkeypatch.setattr(loader, "_patched", counting_patched)
    rev = source.refresh()
    previous = validate(source.root, cache)[0]
    said = 0
    for step in STEPS:
        for rel, body in step.items():
            if rel == "schedules/accounts.yaml":
                body = accounts.replace("Europe/Paris", "Europe/Berlin", 1)
            _edit(origin, rel, body)
        _commit(origin)
        new = source.refresh()
        changed = source.changed(rev)
        assert changed is not None
        read.clear()
        walks.clear()
        found = validate(source.root, cache, changed=changed)
        partial_reads, partial_walks = list(read), len(walks)
        whole = validate(source.root)
        assert found == whole, step
        if found[0] is not None and whole[0] is not None:  # the same order too (plan's)
            assert list(found[0].posts) == list(whole[0].posts), step
        since = found[0].since if found[0] is not None else None
        # What it says changed since the last call covers it all (after an invalid revision
        # the last call's posts are not the last content's: the service then compares all).
        if since is not None and previous is not None and since[0] is previous.posts:
            said += 1
            old, new_posts = previous.posts, found[0].posts  # type: ignore[union-attr]
            differ = {p for p, e in new_posts.items() if old.get(p) is not e}
            assert differ | (set(old) - set(new_posts)) <= since[1], step
        if found[0] is not None:
            previous = found[0]
        if all(r.startswith(("content/posts/gen/", "content/posts/new/")) for r in step):
            # No walk, and only the changed post files were read (and relocated: p06).
            assert partial_walks == 0, step
            assert set(partial_reads) <= set(step) | {"content/posts/gen/p06.yaml"}, step
        else:  # the context changed, or a hidden path: every file, as without ``changed``
            assert partial_walks == 1, step
        rev = new
    # Most steps started from the last outcome (not a duplicate id, nor a changed context).
    assert sum(patched) >= 8, patched
    assert said >= 5, said


def test_files_put_into_the_checkout_by_hand_are_seen(origin: Path, tmp_path: Path) -> None:
    """Untracked, modified and ignored files in the checkout count as changed, and again at
    the next sync (when they may have gone back)."""
    source = GitSource(str(origin), "main", tmp_path / "checkout")
    rev = source.refresh()
    cache = LoadCache()
    validate(source.root, cache)
    write(source.root, "content/posts/gen/untracked.yaml", "lang: xx\ntext: A la main\n")
    write(source.root, "content/posts/gen/p01.yaml", "lang: fr\ntext: Modifié à la main\n")
    write(source.root, ".gitignore", "ignored.yaml\n")
    write(source.root, "content/posts/gen/ignored.yaml", "lang: fr\ntext: Ignoré\n")
    for _ in range(2):
        changed = source.changed(rev)
        assert changed is not None
        assert {
            "content/posts/gen/untracked.yaml",
            "content/posts/gen/p01.yaml",
            "content/posts/gen/ignored.yaml",
        } <= changed
        assert validate(source.root, cache, changed=changed) == validate(source.root)
    _commit(origin)
    new = source.refresh()  # reset --hard: p01.yaml is back as committed
    changed = source.changed(rev)
    assert changed is not None and "content/posts/gen/p01.yaml" in changed
    assert validate(source.root, cache, changed=changed) == validate(source.root)
    assert new != rev


def test_git_that_cannot_say_means_every_file(origin: Path, tmp_path: Path) -> None:
    source = GitSource(str(origin), "main", tmp_path / "checkout")
    source.refresh()
    assert source.changed("0" * 40) is None
