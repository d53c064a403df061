"""``diplobot translate --write``: put machine translations into the post file for review.

The file is edited with ruamel.yaml's round-trip mode, so the editor's comments, order and
quoting stay as they were. Each written translation gets a ``machine_translated`` mark
(backend and a hash of the text); deleting the mark or editing the text approves it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from bot.content.types import PostEntry, machine_mark
from bot.translate.localize import Variant

_NOTE = "machine translations awaiting review: edit the text or delete the line to approve"


def write_translations(
    root: Path, entry: PostEntry, variants: Sequence[Variant], backend: str
) -> list[str]:
    """Write the publishable single-text machine variants of ``entry``; return their langs."""
    path = root / entry.path
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the editors' lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    data = yaml.load(path.read_text(encoding="utf-8"))
    written: list[str] = []
    seen: set[tuple[str, int]] = set()
    # The central glossary's translation first: a mission's copy may have its own (the file's
    # translation is then every account's, the mission's included).
    for v in sorted(variants, key=lambda v: v.glossary != ""):
        if v.post != entry.id or v.origin not in ("machine", "cached") or len(v.texts) != 1:
            continue
        if v.state not in ("ready", "review"):
            continue
        # The post's own texts only (a platform's version is written by hand), each once
        # although every platform of the language has its variant.
        if entry.has_own_text(v.part - 1, v.platform or None) or (v.lang, v.part) in seen:
            continue
        seen.add((v.lang, v.part))
        holder: Any = data if v.part == 1 else data["thread"][v.part - 2]
        _set(holder, "translations", v.lang, v.texts[0], after="text")
        _set(
            holder,
            "machine_translated",
            v.lang,
            machine_mark(backend, v.texts[0]),
            after="translations",
            comment=_NOTE,
        )
        written.append(f"{v.lang}" + (f" (part {v.part})" if v.part > 1 else ""))
    if written:
        buffer = io.StringIO()
        yaml.dump(data, buffer)
        path.write_text(buffer.getvalue(), encoding="utf-8")
    return written


def _set(
    holder: CommentedMap, key: str, lang: str, value: str, *, after: str, comment: str | None = None
) -> None:
    if key not in holder or holder[key] is None:
        position = list(holder.keys()).index(after) + 1 if after in holder else len(holder)
        holder.insert(position, key, CommentedMap())
        if comment:
            holder.yaml_add_eol_comment(comment, key)
    holder[key][lang] = value
