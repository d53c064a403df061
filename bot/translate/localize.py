"""Localize: every post in every language it is published in, each text with its origin.

For each (post, language, part): the editor's text wins; else a cached machine translation;
else translate now — entities masked, glossary applied, the answer checked, the length checked.
Each unique (source text, target) is sent to the engine once, with bounded parallelism, and
stored before anything is published, so a retry publishes identical text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from loguru import logger

from bot.content.loader import ContentSet, PostEntry
from bot.errors import TranslationError, TranslationPermanent
from bot.state.translations import CacheKey, TranslationCache, text_hash
from bot.text.length import MAX_WEIGHTED_LENGTH, weighted_length
from bot.text.protect import EntityMismatch, GlossaryTerm, protect, restore
from bot.text.split import CannotSplit, split_thread
from bot.translate.base import Translator

Origin = Literal["human", "machine", "cached", "file"]
State = Literal["ready", "review", "held", "failed"]


@dataclass(frozen=True, slots=True)
class Variant:
    """The text of one part of one post in one language, and whether it may be published."""

    post: str
    lang: str
    part: int  # 1-based
    texts: tuple[str, ...]  # one text; several when overflow: thread split it
    origin: Origin  # human (the file), machine (translated now), cached, file (unreviewed MT)
    state: State  # ready; review (waits for approval); held (not publishable); failed (retry)
    reason: str = ""


@dataclass(slots=True)
class Stats:
    engine_calls: int = 0
    cache_hits: int = 0
    failures: int = 0


@dataclass(slots=True)
class Localization:
    variants: list[Variant] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)


def glossary_terms(content: ContentSet) -> tuple[GlossaryTerm, ...]:
    return tuple(GlossaryTerm(t.term, dict(t.translations)) for t in content.glossary.terms)


def glossary_version(content: ContentSet) -> str:
    """Changes whenever the glossary does, so cached translations made without it expire."""
    data = [(t.term, sorted(t.translations.items())) for t in content.glossary.terms]
    return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()[:12]


def review_required(content: ContentSet, entry: PostEntry, lang: str) -> bool:
    if entry.post.review is not None:
        return entry.post.review == "required"
    return any(a.review == "required" for a in content.accounts.accounts.values() if a.lang == lang)


@dataclass(frozen=True, slots=True)
class _Job:
    entry: PostEntry
    lang: str
    part: int
    source: str
    key: CacheKey


def localize(
    content: ContentSet,
    translator: Translator,
    cache: TranslationCache,
    *,
    post_ids: Iterable[str] | None = None,
    parallel: int = 4,
) -> Localization:
    """Every variant of the selected posts (default: all, drafts included)."""
    result = Localization()
    gver = glossary_version(content)
    glossary = glossary_terms(content)
    entries = (
        [content.posts[p] for p in post_ids]
        if post_ids is not None
        else sorted(content.posts.values(), key=lambda e: e.id)
    )
    jobs: list[_Job] = []
    for entry in entries:
        for lang in entry.languages:
            for part in range(1, entry.parts + 1):
                human = entry.human_text(lang, part - 1)
                if human is not None:
                    result.variants.append(
                        Variant(entry.id, lang, part, (human.strip(),), "human", "ready")
                    )
                    continue
                written = entry.unreviewed_text(lang, part - 1)
                if written is not None:
                    state: State = "review" if review_required(content, entry, lang) else "ready"
                    result.variants.append(
                        Variant(
                            entry.id,
                            lang,
                            part,
                            (written.strip(),),
                            "file",
                            state,
                            "machine translation in the file awaits approval"
                            if state == "review"
                            else "",
                        )
                    )
                    continue
                source = entry.human_text(entry.post.lang, part - 1) or ""
                key = CacheKey(translator.name, entry.post.lang, lang, text_hash(source), gver)
                jobs.append(_Job(entry, lang, part, source, key))

    known = cache.get_many(list({j.key for j in jobs}))
    missing = {j.key: j for j in jobs if j.key not in known}
    outcomes: dict[CacheKey, str | Exception] = dict(known)
    if missing:
        with ThreadPoolExecutor(
            max_workers=max(1, parallel), thread_name_prefix="translate"
        ) as pool:
            futures = {
                key: pool.submit(_translate_one, translator, job, glossary)
                for key, job in missing.items()
            }
            for key, future in futures.items():
                outcome = future.result()
                outcomes[key] = outcome
                result.stats.engine_calls += 1
                if isinstance(outcome, str):
                    cache.put(key, outcome)
                else:
                    result.stats.failures += 1
    for job in jobs:
        outcome = outcomes[job.key]
        cached = job.key in known
        if cached:
            result.stats.cache_hits += 1
        result.variants.append(_variant(content, job, outcome, cached, glossary))
    result.variants.sort(key=lambda v: (v.post, v.lang, v.part))
    return result


def translate_cached(
    content: ContentSet,
    translator: Translator,
    cache: TranslationCache,
    text: str,
    source: str,
    target: str,
) -> str:
    """One text (an alt text, say) through the same protection, check and cache as posts.

    Raises:
        TranslationError: the engine failed.
        EntityMismatch: the engine damaged a protected entity.
    """
    key = CacheKey(translator.name, source, target, text_hash(text), glossary_version(content))
    known = cache.get_many([key])
    if key in known:
        return known[key]
    protected = protect(text, target, glossary_terms(content))
    restored = restore(translator.translate(protected.masked, source, target), protected).strip()
    cache.put(key, restored)
    return restored


def _translate_one(
    translator: Translator, job: _Job, glossary: tuple[GlossaryTerm, ...]
) -> str | Exception:
    """One engine call; errors are returned (and logged once, here), never raised."""
    protected = protect(job.source, job.lang, glossary)
    log = logger.bind(post=job.entry.id, lang=job.lang, part=job.part, backend=translator.name)
    try:
        answer = translator.translate(protected.masked, job.entry.post.lang, job.lang)
        restored = restore(answer, protected).strip()
    except (TranslationError, EntityMismatch) as exc:
        log.bind(error=str(exc), kind=type(exc).__name__).warning("translate.failed")
        return exc
    log.debug("translate.done")
    return restored


def _variant(
    content: ContentSet,
    job: _Job,
    outcome: str | Exception,
    cached: bool,
    glossary: tuple[GlossaryTerm, ...],
) -> Variant:
    entry, lang, part = job.entry, job.lang, job.part
    if isinstance(outcome, EntityMismatch):
        return Variant(
            entry.id,
            lang,
            part,
            (),
            "machine",
            "held",
            f"held: {outcome.reason}; write a human translation",
        )
    if isinstance(outcome, TranslationPermanent):
        return Variant(entry.id, lang, part, (), "machine", "failed", str(outcome))
    if isinstance(outcome, Exception):
        return Variant(entry.id, lang, part, (), "machine", "failed", f"{outcome} (will retry)")
    origin: Origin = "cached" if cached else "machine"
    texts: tuple[str, ...] = (outcome,)
    length = weighted_length(outcome)
    if length > MAX_WEIGHTED_LENGTH:
        if entry.post.overflow != "thread":
            return Variant(
                entry.id,
                lang,
                part,
                (outcome,),
                origin,
                "held",
                f"held: the {lang} translation is {length} characters (limit "
                f"{MAX_WEIGHTED_LENGTH}); shorten the source, write a translation, "
                "or set 'overflow: thread'",
            )
        keep = [t for g in glossary for t in g.translations.values()]
        try:
            texts = tuple(split_thread(outcome, keep))
        except CannotSplit as exc:
            return Variant(entry.id, lang, part, (outcome,), origin, "held", f"held: {exc}")
    if review_required(content, entry, lang):
        return Variant(
            entry.id,
            lang,
            part,
            texts,
            origin,
            "review",
            "machine translation awaits approval (diplobot translate --write)",
        )
    return Variant(entry.id, lang, part, texts, origin, "ready")
