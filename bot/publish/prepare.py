"""From a post and its localized variants to ledger rows, one per published post per account.

A post of N parts usually becomes N rows per account (the reply chain). A machine translation
split by ``overflow: thread`` adds rows for that account only. Images go with the first row of
their part, with alt text in the account's language (the editor's, else translated like text,
else the source alt text as a last resort, logged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from loguru import logger

from bot.content.loader import CONTENT_DIR, ContentSet, PostEntry
from bot.content.model import Media
from bot.errors import TranslationError
from bot.state.ledger import MediaRef, NewDelivery
from bot.state.translations import TranslationCache
from bot.text.protect import EntityMismatch
from bot.translate.base import Translator
from bot.translate.localize import Variant, translate_cached


@dataclass(slots=True)
class Prepared:
    rows: list[NewDelivery] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # account → why it cannot go
    # Accounts refused only because a translation failed (worth trying again): the rows to
    # hold in the ledger meanwhile (one per part, no text yet), and why.
    waiting: dict[str, tuple[list[NewDelivery], str]] = field(default_factory=dict)


def prepare(
    content: ContentSet,
    entry: PostEntry,
    variants: list[Variant],
    accounts: list[str],
    *,
    channel: str,
    due: datetime,
    translator: Translator | None,
    cache: TranslationCache | None,
    revision: tuple[str | None, str | None] = (None, None),
) -> Prepared:
    result = Prepared()
    by_lang: dict[str, list[Variant]] = {}
    for v in variants:
        if v.post == entry.id:
            by_lang.setdefault(v.lang, []).append(v)
    for account_id in accounts:
        lang = content.accounts.accounts[account_id].lang
        parts = sorted(by_lang.get(lang, []), key=lambda v: v.part)
        not_ready = [v for v in parts if v.state != "ready"]
        if not parts:
            result.refused[account_id] = f"the post is not published in '{lang}'"
            continue
        if not_ready:
            v = not_ready[0]
            result.refused[account_id] = f"part {v.part} in {lang} is {v.state}: {v.reason}"
            if all(n.state == "failed" for n in not_ready):
                held = [
                    NewDelivery(
                        post_id=entry.id,
                        account=account_id,
                        part=p.part,
                        channel=channel,
                        lang=lang,
                        due_at=due,
                        text="",
                        revision=revision[0],
                        author=revision[1],
                    )
                    for p in parts
                ]
                why = v.reason.removesuffix(" (will retry)")
                result.waiting[account_id] = (held, f"awaiting translation into {lang}: {why}")
            continue
        seq = 0
        for v in parts:
            media = entry.post.media if v.part == 1 else entry.post.thread[v.part - 2].media
            refs = tuple(
                MediaRef(
                    f"{CONTENT_DIR}/{m.file}", _alt(content, entry, m, lang, translator, cache)
                )
                for m in media
            )
            for i, text in enumerate(v.texts):
                seq += 1
                result.rows.append(
                    NewDelivery(
                        post_id=entry.id,
                        account=account_id,
                        part=seq,
                        channel=channel,
                        lang=lang,
                        due_at=due,
                        text=text,
                        media=refs if i == 0 else (),
                        revision=revision[0],
                        author=revision[1],
                    )
                )
    return result


def _alt(
    content: ContentSet,
    entry: PostEntry,
    media: Media,
    lang: str,
    translator: Translator | None,
    cache: TranslationCache | None,
) -> str | None:
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
    if translator is None or cache is None:
        return source
    try:
        return translate_cached(content, translator, cache, source, source_lang, lang)
    except (TranslationError, EntityMismatch) as exc:
        logger.bind(post=entry.id, lang=lang, error=str(exc)).warning("alt.untranslated")
        return source
