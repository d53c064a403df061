"""Localize: every post in every language it is published in, each text with its origin.

For each (post, language, part): the editor's text wins; else a cached machine translation;
else translate now — entities masked, glossary applied, the answer checked, the length checked.
The alt texts of the part's images are settled in the same pass: the editor's, else translated
like text, else the source alt text as a last resort (logged). Each unique (source text,
target) is sent to the engine once, with bounded parallelism, and stored before anything is
published, so a retry publishes identical text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Literal

from loguru import logger

from bot.content.model import Media
from bot.content.types import ContentSet, PostEntry
from bot.errors import TranslationError, TranslationPermanent, TranslationTransient
from bot.platforms import DEFAULT_PLATFORM, PLATFORMS
from bot.state.translations import CacheKey, TranslationCache, text_hash
from bot.text.protect import EntityMismatch, GlossaryTerm, protect, restore
from bot.text.split import CannotSplit, split_thread
from bot.translate.base import BatchTooLarge, BatchTranslator, Translator

Origin = Literal["human", "machine", "cached", "file"]
VariantState = Literal["ready", "review", "held", "failed"]


@dataclass(frozen=True, slots=True)
class Variant:
    """The text of one part of one post in one language, and whether it may be published."""

    post: str
    lang: str
    part: int  # 1-based
    texts: tuple[str, ...]  # one text; several when overflow: thread split it
    origin: Origin  # human (the file), machine (translated now), cached, file (unreviewed MT)
    # ready; review (waits for approval); held (not publishable); failed (retry)
    state: VariantState
    reason: str = ""
    alts: tuple[str | None, ...] = ()  # alt text of each image of the part, in ``lang``
    # The platform whose accounts publish it: each is checked against its own limits, and
    # a post may have a version of its own for a platform ("" : no platform, e.g. no account).
    platform: str = ""
    # Whose glossary a machine translation used: "" the central one, else a mission's (its
    # accounts publish it: ``ContentSet.glossary_owner``).
    glossary: str = ""


@dataclass(slots=True)
class LocalizeStats:
    """What one :func:`localize` call asked of the engine and found in the cache."""

    engine_calls: int = 0  # texts the engine was asked to translate
    cache_hits: int = 0
    failures: int = 0
    requests: int = 0  # requests made to the engine (a batch is one)


@dataclass(slots=True)
class Localization:
    variants: list[Variant] = field(default_factory=list)
    stats: LocalizeStats = field(default_factory=LocalizeStats)


def glossary_terms(content: ContentSet, owner: str = "") -> tuple[GlossaryTerm, ...]:
    """The terms of the central glossary, or (``owner``) of a mission's."""
    glossary = content.glossary_of(owner) if owner else content.glossary
    return tuple(GlossaryTerm(t.term, dict(t.translations)) for t in glossary.terms)


def glossary_version(content: ContentSet, owner: str = "") -> str:
    """Changes whenever the glossary does, so cached translations made without it expire."""
    glossary = content.glossary_of(owner) if owner else content.glossary
    data = [(t.term, sorted(t.translations.items())) for t in glossary.terms]
    return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()[:12]


def _groups(content: ContentSet, entry: PostEntry) -> list[tuple[str, str, tuple[str, ...]]]:
    """(glossary owner, language, platforms): one variant per platform of the accounts that
    publish ``entry`` in the language (each has its own limits, and the post may have a
    version of its own for it), per glossary they translate with. No account: no platform."""
    accounts = content.accounts.accounts
    found: dict[tuple[str, str], set[str]] = {}
    for account in content.publishers_of(entry):
        lang = accounts[account].lang
        if lang in entry.languages:
            owner = content.glossary_owner(account)
            found.setdefault((lang, owner), set()).add(accounts[account].platform)
    published = {lang for lang, _owner in found}
    for lang in entry.languages:
        if lang not in published:
            found[(lang, "")] = set()
    return [(owner, lang, tuple(sorted(p)) or ("",)) for (lang, owner), p in found.items()]


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
    source_lang: str
    platform: str = ""
    terms: tuple[GlossaryTerm, ...] | None = None  # None: the central glossary
    glossary: str = ""  # whose glossary (see ``Variant.glossary``)


Alt = str | None | _Job
"""An image's alt text in a language: settled (the editor's, or none), or to translate."""


def _alt(
    media: Media,
    entry: PostEntry,
    lang: str,
    part: int,
    translator: str,
    gver: str,
    terms: tuple[GlossaryTerm, ...] | None = None,
) -> Alt:
    if isinstance(media.alt, dict):
        if lang in media.alt:
            return media.alt[lang]
        source_lang = entry.post.lang if entry.post.lang in media.alt else next(iter(media.alt))
        source = media.alt[source_lang]
    elif media.alt is None:
        return None
    else:
        source_lang, source = entry.post.lang, media.alt
        if lang == source_lang:
            return source
    key = CacheKey(translator, source_lang, lang, text_hash(source), gver)
    return _Job(entry, lang, part, source, key, source_lang, terms=terms)


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
    # (post, lang, part, platform, glossary owner) → each image's alt text
    alts: dict[tuple[str, str, int, str, str], list[Alt]] = {}
    # A mission with a glossary of its own: its versions, and its terms (None: the central).
    owned: dict[str, tuple[str, tuple[GlossaryTerm, ...] | None]] = {"": (gver, None)}
    for entry in entries:
        for owner, lang, platforms in _groups(content, entry):
            if owner not in owned:
                owned[owner] = (glossary_version(content, owner), glossary_terms(content, owner))
            ver, terms = owned[owner]
            for platform in platforms:
                where = platform or None
                for part in range(1, entry.parts_for(where) + 1):
                    found = _settled(content, entry, lang, part, platform)
                    if found is not None:
                        result.variants.append(replace(found, glossary=owner))
                        continue
                    source = entry.human_text(entry.post.lang, part - 1, where) or ""
                    key = CacheKey(translator.name, entry.post.lang, lang, text_hash(source), ver)
                    jobs.append(
                        _Job(
                            entry, lang, part, source, key, entry.post.lang, platform, terms, owner
                        )
                    )
                # Alt texts: settled here with the text, so rows need no translation of their own.
                for part in range(1, entry.parts_for(where) + 1):
                    media = entry.media_of(part - 1, where)
                    if media:
                        alts[(entry.id, lang, part, platform, owner)] = [
                            _alt(m, entry, lang, part, translator.name, ver, terms) for m in media
                        ]
    alt_jobs = {a.key: a for spec in alts.values() for a in spec if isinstance(a, _Job)}
    text_keys = {j.key for j in jobs}

    known = cache.get_many(list(text_keys | set(alt_jobs)))
    missing = {j.key: j for j in jobs if j.key not in known}
    for key, alt_job in alt_jobs.items():
        if key not in known:
            missing.setdefault(key, alt_job)
    outcomes: dict[CacheKey, str | Exception] = dict(known)
    if missing:
        fresh: list[tuple[CacheKey, str]] = []
        for key, outcome in _translate_all(translator, missing, glossary, parallel, result.stats):
            outcomes[key] = outcome
            result.stats.engine_calls += 1
            if isinstance(outcome, str):
                fresh.append((key, outcome))
            else:
                result.stats.failures += 1
        # Every outcome is in hand only once the last request is answered (_translate_all), so
        # storing them together loses nothing a write each would keep, and costs one
        # transaction instead of one per text (800 at a 10,000-post first start: ~1 s).
        cache.put_many(fresh)
    counted: set[tuple[str, str, int, CacheKey]] = set()
    for job in jobs:
        outcome = outcomes[job.key]
        cached = job.key in known
        # One hit per text the engine would have translated, whatever the platforms sharing it.
        if cached and (job.entry.id, job.lang, job.part, job.key) not in counted:
            counted.add((job.entry.id, job.lang, job.part, job.key))
            result.stats.cache_hits += 1
        made = _variant(content, job, outcome, cached, glossary)
        result.variants.append(replace(made, glossary=job.glossary) if job.glossary else made)
    # Alt texts only (not among the texts): one hit per unique key, as calls are counted.
    result.stats.cache_hits += sum(1 for key in alt_jobs if key in known and key not in text_keys)
    if alts:
        result.variants = [
            replace(v, alts=_settle_alts(alts[k], outcomes))
            if (k := (v.post, v.lang, v.part, v.platform, v.glossary)) in alts
            else v
            for v in result.variants
        ]
    result.variants.sort(key=lambda v: (v.post, v.lang, v.platform, v.glossary, v.part))
    return result


def _settled(
    content: ContentSet, entry: PostEntry, lang: str, part: int, platform: str
) -> Variant | None:
    """The variant of a part whose text is in the file (the editor's, or a machine
    translation written there), or None when it is to be translated."""
    where = platform or None
    human = entry.human_text(lang, part - 1, where)
    if human is not None:
        return Variant(entry.id, lang, part, (human.strip(),), "human", "ready", platform=platform)
    written = entry.unreviewed_text(lang, part - 1, where)
    if written is None:
        return None
    state: VariantState = "review" if review_required(content, entry, lang) else "ready"
    return Variant(
        entry.id,
        lang,
        part,
        (written.strip(),),
        "file",
        state,
        "machine translation in the file awaits approval" if state == "review" else "",
        platform=platform,
    )


def _settle_alts(
    spec: list[Alt], outcomes: dict[CacheKey, str | Exception]
) -> tuple[str | None, ...]:
    """Each image's alt text; a translation that failed falls back to the source (logged)."""
    settled: list[str | None] = []
    for alt in spec:
        if not isinstance(alt, _Job):
            settled.append(alt)
            continue
        outcome = outcomes[alt.key]
        if isinstance(outcome, Exception):
            logger.bind(post=alt.entry.id, lang=alt.lang, error=str(outcome)).warning(
                "alt.untranslated"
            )
            settled.append(alt.source)
        else:
            settled.append(outcome)
    return tuple(settled)


def _translate_all(
    translator: Translator,
    missing: dict[CacheKey, _Job],
    glossary: tuple[GlossaryTerm, ...],
    parallel: int,
    stats: LocalizeStats,
) -> Iterator[tuple[CacheKey, str | Exception]]:
    """Each missing translation's outcome, ``parallel`` requests at a time. An engine that
    takes lists (:class:`BatchTranslator`) gets the texts of one language pair in batches,
    one request each; any other, one request per text. Either way each text is protected and
    restored on its own, and its outcome is its own (cached per text by the caller)."""
    batched = translator if isinstance(translator, BatchTranslator) else None
    batches = _batches(batched, missing.values()) if batched else [[j] for j in missing.values()]

    def run(batch: list[_Job]) -> tuple[list[str | Exception], int]:
        if batched is not None and len(batch) > 1:
            return _translate_batch(batched, batch, glossary)
        return [_translate_one(translator, job, glossary) for job in batch], len(batch)

    done: dict[CacheKey, str | Exception] = {}
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="translate") as pool:
        for batch, (outcomes, requests) in zip(batches, pool.map(run, batches), strict=True):
            stats.requests += requests
            for job, outcome in zip(batch, outcomes, strict=True):
                done[job.key] = outcome
    for key in missing:  # in the order asked
        yield key, done[key]


def _batches(translator: BatchTranslator, jobs: Iterable[_Job]) -> list[list[_Job]]:
    """``jobs`` by language pair, in batches of at most ``batch_texts`` texts and
    ``batch_chars`` characters (a longer text goes alone)."""
    by_pair: dict[tuple[str, str], list[_Job]] = {}
    for job in jobs:
        by_pair.setdefault((job.source_lang, job.lang), []).append(job)
    batches: list[list[_Job]] = []
    for pair in by_pair.values():
        batch: list[_Job] = []
        chars = 0
        for job in pair:
            size = len(job.source)
            full = len(batch) >= translator.batch_texts or chars + size > translator.batch_chars
            if batch and full:
                batches.append(batch)
                batch, chars = [], 0
            batch.append(job)
            chars += size
        batches.append(batch)
    return batches


def _translate_batch(
    translator: BatchTranslator, jobs: list[_Job], glossary: tuple[GlossaryTerm, ...]
) -> tuple[list[str | Exception], int]:
    """One request for ``jobs`` (one language pair); each text protected and restored as
    :func:`_translate_one` does. A batch the server finds too large goes one text at a time."""
    first = jobs[0]
    protected = [protect(job.source, job.lang, _terms(job, glossary)) for job in jobs]
    log = logger.bind(lang=first.lang, texts=len(jobs), backend=translator.name)
    try:
        answers = translator.translate_many(
            [p.masked for p in protected], first.source_lang, first.lang
        )
    except BatchTooLarge as exc:
        log.bind(error=str(exc)).warning("translate.batch_refused")
        return [_translate_one(translator, job, glossary) for job in jobs], 1 + len(jobs)
    except TranslationError as exc:
        log.bind(error=str(exc), kind=type(exc).__name__).warning("translate.failed")
        return [exc] * len(jobs), 1
    outcomes: list[str | Exception] = []
    for job, shielded, answer in zip(jobs, protected, answers, strict=True):
        job_log = logger.bind(post=job.entry.id, lang=job.lang, part=job.part)
        try:
            if not answer.strip():
                raise TranslationTransient(f"{translator.name} returned an empty translation")
            outcomes.append(restore(answer, shielded).strip())
        except (TranslationError, EntityMismatch) as exc:
            job_log.bind(error=str(exc), kind=type(exc).__name__).warning("translate.failed")
            outcomes.append(exc)
        else:
            job_log.debug("translate.done")
    return outcomes, 1


def _translate_one(
    translator: Translator, job: _Job, glossary: tuple[GlossaryTerm, ...]
) -> str | Exception:
    """One engine call; errors are returned (and logged once, here), never raised."""
    protected = protect(job.source, job.lang, _terms(job, glossary))
    log = logger.bind(post=job.entry.id, lang=job.lang, part=job.part, backend=translator.name)
    try:
        answer = translator.translate(protected.masked, job.source_lang, job.lang)
        restored = restore(answer, protected).strip()
    except (TranslationError, EntityMismatch) as exc:
        log.bind(error=str(exc), kind=type(exc).__name__).warning("translate.failed")
        return exc
    log.debug("translate.done")
    return restored


def _terms(job: _Job, glossary: tuple[GlossaryTerm, ...]) -> tuple[GlossaryTerm, ...]:
    """The glossary ``job`` is translated with: its mission's, else the central one."""
    return job.terms if job.terms is not None else glossary


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
            platform=job.platform,
        )
    if isinstance(outcome, TranslationPermanent):
        return Variant(
            entry.id, lang, part, (), "machine", "failed", str(outcome), platform=job.platform
        )
    if isinstance(outcome, Exception):
        return Variant(
            entry.id,
            lang,
            part,
            (),
            "machine",
            "failed",
            f"{outcome} (will retry)",
            platform=job.platform,
        )
    origin: Origin = "cached" if cached else "machine"
    texts: tuple[str, ...] = (outcome,)
    # Re-checked against the platform it goes to, counted its way (a caption under images).
    limits = (PLATFORMS[job.platform] if job.platform else PLATFORMS[DEFAULT_PLATFORM]).limits
    limit = limits.text_limit(bool(entry.media_of(part - 1, job.platform or None)))
    length = limits.count(outcome)
    if length > limit:
        if entry.post.overflow != "thread":
            return Variant(
                entry.id,
                lang,
                part,
                (outcome,),
                origin,
                "held",
                f"held: the {lang} translation is {length} characters (limit "
                f"{limit}); shorten the source, write a translation, "
                "or set 'overflow: thread'",
                platform=job.platform,
            )
        keep = [t for g in _terms(job, glossary) for t in g.translations.values()]
        try:
            texts = tuple(split_thread(outcome, keep, limit=limit, count=limits.count))
        except CannotSplit as exc:
            return Variant(
                entry.id,
                lang,
                part,
                (outcome,),
                origin,
                "held",
                f"held: {exc}",
                platform=job.platform,
            )
    if review_required(content, entry, lang):
        return Variant(
            entry.id,
            lang,
            part,
            texts,
            origin,
            "review",
            "machine translation awaits approval (diplobot translate --write)",
            platform=job.platform,
        )
    return Variant(entry.id, lang, part, texts, origin, "ready", platform=job.platform)
