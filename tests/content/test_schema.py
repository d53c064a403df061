"""The JSON Schemas editors' tools use: in sync with the models, and accepting the example."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from bot.content.model import SCHEMAS
from bot.content.schema import SCHEMA_DIR, schema_json
from bot.content.yamlsrc import read_yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_committed_schema_matches_the_model(kind: str) -> None:
    """bot/schemas/*.json is regenerated with the models (`diplobot schema bot/schemas`)."""
    on_disk = (SCHEMA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8")
    assert on_disk == schema_json(kind)


def _example_files() -> list[tuple[str, Path]]:
    files = [
        ("accounts", ROOT / "schedules/accounts.yaml"),
        ("slots", ROOT / "schedules/slots.yaml"),
        ("glossary", ROOT / "content/glossary.yaml"),
    ]
    files += [("post", p) for p in sorted((ROOT / "content/posts").rglob("*.yaml"))]
    for mission in sorted((ROOT / "missions").iterdir()):  # each mission: the same files
        files += [
            (kind, mission / f"{kind}.yaml")
            for kind in ("accounts", "slots", "glossary")
            if (mission / f"{kind}.yaml").exists()
        ]
        files += [("post", p) for p in sorted((mission / "posts").rglob("*.yaml"))]
    return files


@pytest.mark.parametrize(
    ("kind", "path"), _example_files(), ids=lambda v: str(v).split("main/")[-1]
)
def test_example_files_satisfy_their_schema(kind: str, path: Path) -> None:
    """What an editor's YAML extension checks agrees with the bundled example."""
    schema = json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8"))
    data = read_yaml(path, str(path)).data
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(data)]
    assert errors == []


def test_schema_rejects_a_typo_the_way_validate_does() -> None:
    """The schema forbids unknown keys, so `pubish_at` is underlined in the editor too."""
    schema = json.loads((SCHEMA_DIR / "post.schema.json").read_text(encoding="utf-8"))
    post = {"lang": "fr", "text": "Bonjour", "pubish_at": "2026-11-24 09:00"}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(post))
    assert any("pubish_at" in e.message for e in errors)
