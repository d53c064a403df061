"""JSON Schemas for the editors' files, generated from the models.

The copies under ``bot/schemas/`` are committed (a test keeps them in sync) so that a YAML
editor can point at them; ``diplobot schema DIR`` writes them anywhere else.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.content.model import SCHEMAS

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def schema_json(kind: str) -> str:
    model = SCHEMAS[kind]
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://diplobot.invalid/schemas/{kind}.schema.json"
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in SCHEMAS:
        path = directory / f"{kind}.schema.json"
        path.write_text(schema_json(kind), encoding="utf-8")
        written.append(path)
    return written
