"""The translation cache: each unique (text, target) is translated once per backend and
glossary version, across runs and restarts. What is stored is the restored, checked text —
exactly what will be published — so a retry publishes identical text."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Engine, and_, select

from bot.state.dialect import upsert_rows
from bot.state.tables import translations, utc_now
from bot.text.length import normalize


def text_hash(text: str) -> str:
    return hashlib.sha256(normalize(text).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class CacheKey:
    backend: str
    source_lang: str
    target_lang: str
    source_hash: str
    glossary_version: str


class TranslationCache:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get_many(self, keys: list[CacheKey]) -> dict[CacheKey, str]:
        """The cached texts of ``keys`` (missing keys are absent from the result)."""
        found: dict[CacheKey, str] = {}
        if not keys:
            return found
        t = translations.c
        by_group: dict[tuple[str, str, str, str], list[str]] = {}
        for k in keys:
            by_group.setdefault(
                (k.backend, k.source_lang, k.target_lang, k.glossary_version), []
            ).append(k.source_hash)
        with self.engine.connect() as conn:
            for (backend, src, tgt, gver), hashes in by_group.items():
                for i in range(0, len(hashes), 500):
                    rows = conn.execute(
                        select(t.source_hash, t.text).where(
                            and_(
                                t.backend == backend,
                                t.source_lang == src,
                                t.target_lang == tgt,
                                t.glossary_version == gver,
                                t.source_hash.in_(hashes[i : i + 500]),
                            )
                        )
                    )
                    for source_hash, value in rows:
                        found[CacheKey(backend, src, tgt, source_hash, gver)] = value
        return found

    def put(self, key: CacheKey, value: str) -> None:
        self.put_many([(key, value)])

    def put_many(self, items: list[tuple[CacheKey, str]]) -> None:
        """Store every (key, text) of ``items`` in one transaction."""
        if not items:
            return
        now = utc_now()
        rows = [
            {
                "backend": key.backend,
                "source_lang": key.source_lang,
                "target_lang": key.target_lang,
                "source_hash": key.source_hash,
                "glossary_version": key.glossary_version,
                "text": value,
                "created_at": now,
            }
            for key, value in items
        ]
        with self.engine.begin() as conn:
            upsert_rows(conn, translations, rows)
