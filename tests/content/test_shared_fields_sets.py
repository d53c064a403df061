"""Posts share pydantic's record of the fields each model was given (one set per distinct
set of fields, not one per model: memory at 50,000 posts): each model still reports exactly
the fields it was given, as without sharing, and dumps the same."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.content import checks
from bot.content.loader import load

ROOT = Path(__file__).resolve().parents[2]


def _models(model: BaseModel, path: str = "") -> list[tuple[str, BaseModel]]:
    found = [(path, model)]
    for name, value in model.__dict__.items():
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


def test_shared_fields_sets_are_the_fields_each_model_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys.path.insert(0, str(ROOT))
    from bench.genrepo import generate

    repo = generate(tmp_path / "repo", 300)
    shared = load(repo)
    monkeypatch.setattr(checks, "_share_fields_sets", lambda model: None)
    own = load(repo)
    assert shared == own
    objects: set[int] = set()
    for post_id, entry in own.posts.items():
        mine = _models(shared.posts[post_id].post)
        theirs = _models(entry.post)
        assert [p for p, _ in mine] == [p for p, _ in theirs]
        for (_, a), (_, b) in zip(mine, theirs, strict=True):
            assert a.model_fields_set == b.model_fields_set
            assert a.model_dump(exclude_unset=True) == b.model_dump(exclude_unset=True)
            objects.add(id(a.__pydantic_fields_set__))
    assert len(objects) < 40  # shared: a handful of distinct sets for 300 posts
