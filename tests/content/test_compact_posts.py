"""The service keeps its posts compacted (``checks.compacted``: fields in CPython's compact
per-instance values, one shared fields-set per distinct set, one shared read-only empty dict
and list): memory at 50,000 posts. A compacted post must be indistinguishable from the one
pydantic built — equal, the same fields given, the same dumps, copies that change — and the
shared empties must refuse a change instead of passing it to every post."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.content import checks
from bot.content.loader import load
from bot.content.types import ContentSet

ROOT = Path(__file__).resolve().parents[2]


def _models(model: BaseModel, path: str = "") -> list[tuple[str, BaseModel]]:
    found = [(path, model)]
    for name in type(model).model_fields:
        value = getattr(model, name)
        items: list[tuple[object, object]]
        if isinstance(value, dict):
            items = list(value.items())
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        else:
            items = [(None, value)]
        for key, item in items:
            if isinstance(item, BaseModel):
                found += _models(item, f"{path}.{name}" + (f"[{key}]" if key is not None else ""))
    return found


def _both(repo: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ContentSet, ContentSet]:
    compact = load(repo)
    with monkeypatch.context() as patch:
        patch.setattr(checks, "compacted", lambda model: model)
        own = load(repo)
    return compact, own


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(ROOT))
    from bench.genrepo import generate

    return generate(tmp_path_factory.mktemp("compact") / "repo", 300)


@pytest.mark.parametrize("which", ["generated", "example"])
def test_a_compacted_post_is_the_post_pydantic_built(
    which: str, generated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = generated if which == "generated" else ROOT
    compact, own = _both(repo, monkeypatch)
    assert list(compact.posts) == list(own.posts)
    nested = 0
    for post_id, entry in own.posts.items():
        mine = _models(compact.posts[post_id].post)
        theirs = _models(entry.post)
        nested += len(mine) - 1
        assert [p for p, _ in mine] == [p for p, _ in theirs]
        for (_, a), (_, b) in zip(mine, theirs, strict=True):
            assert type(a) is type(b)
            assert a.model_fields_set == b.model_fields_set
            assert a.model_dump() == b.model_dump()
            assert a.model_dump(exclude_unset=True) == b.model_dump(exclude_unset=True)
            assert a.model_dump_json() == b.model_dump_json()
            assert repr(a) == repr(b)
            assert a == b and b == a
    assert nested > 0  # the posts hold parts, media or platform texts: those were compared
    assert compact == own


def test_posts_share_their_fields_sets_and_empty_containers(generated: Path) -> None:
    posts = [entry.post for entry in load(generated).posts.values()]
    sets = {id(model.__pydantic_fields_set__) for post in posts for _, model in _models(post)}
    assert len(sets) < 40  # a handful of distinct sets for 300 posts and their parts
    empties = {id(post.translations) for post in posts if not post.translations}
    empties |= {id(post.platforms) for post in posts if not post.platforms}
    assert len(empties) == 1
    lists = {id(post.media) for post in posts if not post.media}
    lists |= {id(post.thread) for post in posts if not post.thread}
    assert len(lists) == 1


def test_the_shared_empties_refuse_a_change_and_copies_still_change(generated: Path) -> None:
    posts = [entry.post for entry in load(generated).posts.values()]
    bare = next(post for post in posts if not post.translations and not post.media)
    with pytest.raises(TypeError, match="shared by every post"):
        bare.translations["en"] = "Hello"
    with pytest.raises(TypeError, match="shared by every post"):
        bare.translations.update(en="Hello")
    with pytest.raises(TypeError, match="shared by every post"):
        bare.media.append("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="shared by every post"):
        bare.thread += []
    changed = bare.model_copy(update={"translations": {"en": "Hello"}, "text": "Bonjour"})
    assert changed.translations == {"en": "Hello"} and changed.text == "Bonjour"
    assert bare.translations == {} and bare.text != "Bonjour"
    assert "translations" in changed.model_fields_set


def test_compacted_posts_take_less_memory(generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def traced(compact: bool) -> int:
        gc.collect()
        tracemalloc.start()
        try:
            with monkeypatch.context() as patch:
                if not compact:
                    patch.setattr(checks, "compacted", lambda model: model)
                content = load(generated)
            gc.collect()
            size = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert len(content.posts) == 300
        return size

    traced(True)  # imports and caches made once, outside the comparison
    own, compact = traced(False), traced(True)
    # Against no compaction at all: ~1,110 bytes less a post (3.11 and 3.12). Sharing the
    # fields-sets and the empties without the copy saves ~770: the copy is in the figure.
    assert own - compact > 300 * 900, (own, compact)


_PROBE = """
import gc, json, sys, tracemalloc
from pathlib import Path
from bot.content.model import Post
count = int(sys.argv[2])
early = [Post.model_validate({"lang": "fr", "text": f"Bonjour {i}"}) for i in range(count)]
from bot.content.loader import load
load(Path(sys.argv[1]))  # imports and caches made once, outside the measure
gc.collect()
tracemalloc.start()
content = load(Path(sys.argv[1]))
gc.collect()
print(json.dumps(tracemalloc.get_traced_memory()[0] // len(content.posts)))
"""


def test_posts_validated_before_any_compaction_leave_it_its_saving(generated: Path) -> None:
    """CPython shrinks the room for the keys its instances share each time an instance is
    made before any key is in it, as pydantic makes them: ~40 posts validated and not kept
    (invalid ones, another command's) before the first compacted one would leave no room,
    and every compacted post would take a dict of its own again. model.py's ``_Strict``
    makes the room when each class is defined; measured in fresh processes, with and
    without 200 posts validated first."""

    def per_post(early: int) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(generated), str(early)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return int(json.loads(done.stdout))

    fresh, after_200 = per_post(0), per_post(200)
    assert after_200 < fresh * 1.05, (fresh, after_200)
