"""``diplobot validate``'s result cache (keyed by git blob id) finds exactly what checking
every file finds — the same validity, the same problems in the same order — run after run:
unchanged, edited in the working tree, committed, invalid files, duplicate ids, deleted and
new files, a changed accounts file; and it reads no YAML for unchanged files. A cache file
committed to the repository, or one whose entries do not match the blobs, is not believed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.content import checks, loader
from bot.content.loader import check
from bot.content.resultcache import CACHE_FILE

ROOT = Path(__file__).resolve().parents[2]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from bench.genrepo import generate

    found = generate(tmp_path / "repo", 120)
    (found / "content/posts/bad.yaml").write_text("lang: xx\ntext: Mauvais\n", encoding="utf-8")
    (found / "content/posts/warn.yaml").write_text(
        "lang: fr\ntext: Un texte\nreview: maybe\n", encoding="utf-8"
    )
    (found / ".gitignore").write_text(".diplobot/\n", encoding="utf-8")  # as a repository has
    _git(found, "init", "-q", "-b", "main")
    _git(found, "add", "-A")
    _git(found, "commit", "-qm", "start")
    return found


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    read: list[str] = []
    real = checks.read_doc

    def counting(base: Path, rel: str, out: object) -> object:
        read.append(rel)
        return real(base, rel, out)  # type: ignore[arg-type]

    monkeypatch.setattr(checks, "read_doc", counting)
    return read


def test_cached_checks_equal_checking_every_file(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = _reads(monkeypatch)
    post = repo / "content/posts/000/post-00003.yaml"

    def same() -> list[str]:
        """Checks with the cache (twice: it writes, then reads) equal checks without it;
        the post files the second run read."""
        whole = check(repo, cache=False)
        assert check(repo, cache=True) == whole
        read.clear()
        assert check(repo, cache=True) == whole
        return [r for r in read if r.startswith("content/posts/")]

    assert same() == []  # nothing changed: no post file read
    assert not check(repo, cache=True)[0]  # bad.yaml
    post.write_text(post.read_text(encoding="utf-8") + "review: x\n", encoding="utf-8")
    assert "content/posts/000/post-00003.yaml" in same()  # modified, not committed
    _git(repo, "commit", "-qam", "edit")
    assert same() == []
    (repo / "content/posts/dup.yaml").write_text("id: bench-00005\nlang: fr\ntext: D\n", "utf-8")
    (repo / "content/posts/bad.yaml").unlink()
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "dup")
    assert same() == []
    accounts = repo / "schedules/accounts.yaml"
    accounts.write_text(accounts.read_text("utf-8").replace("daily_cap: 60", "daily_cap: 5"))
    read.clear()
    check(repo, cache=True)
    assert len([r for r in read if r.startswith("content/posts/")]) > 100  # context changed
    assert same() == []
    assert (repo / CACHE_FILE).is_file()


def test_a_cache_that_does_not_match_or_is_committed_is_not_believed(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = check(repo, cache=False)
    assert not whole[0]
    check(repo, cache=True)
    path = repo / CACHE_FILE
    data = json.loads(path.read_text("utf-8"))
    entry = data["files"]["content/posts/bad.yaml"]
    data["files"]["content/posts/bad.yaml"] = [entry[0], "bad", []]  # "bad.yaml is fine"
    forged = json.dumps(data)
    path.write_text(forged, encoding="utf-8")
    assert check(repo, cache=True) != whole  # the blob matches: believed (it is local)
    data["files"]["content/posts/bad.yaml"][0] = "0" * 40  # another blob: not believed
    path.write_text(json.dumps(data), encoding="utf-8")
    assert check(repo, cache=True) == whole
    path.write_text(forged, encoding="utf-8")
    _git(repo, "add", "-f", CACHE_FILE)
    _git(repo, "commit", "-qm", "a cache in the repository")
    path.write_text(forged, encoding="utf-8")
    assert check(repo, cache=True) == whole  # committed: ignored
    monkeypatch.setattr(loader, "PARALLEL_MIN_FILES", 10)  # both cores, same answer
    assert check(repo, jobs=2, cache=True) == whole
