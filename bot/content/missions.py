"""Missions: who publishes a post. Pure.

A repository is one mission (the *central* one: ``content/``, ``schedules/``) and any number of
others under ``missions/<name>/``. A post goes to its own mission's accounts (by language, or
those its ``accounts:`` names). A central post may be *amplified* by other missions
(``amplify:``): each of their accounts reposts the central account's post where its platform
can repost and a central account on that platform publishes the post, or else publishes a
localized copy (``how: copy``: always a copy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bot.content.model import Account, Amplify, Post
from bot.platforms import REPOSTING

How = Literal["repost", "copy"]


@dataclass(frozen=True, slots=True)
class Target:
    """One account a post goes to, and how."""

    account: str
    # The central account whose post this account reposts; None: it publishes a text.
    repost_of: str | None = None
    amplified: bool = False  # a mission's account amplifying a central post


def amplifiers(
    amplify: list[str] | str | Amplify | None, missions: Mapping[str, object]
) -> tuple[list[str], How]:
    """The missions ``amplify`` names (``all``: every mission in ``missions``, in order), and
    how they amplify. Names that are not missions are left out (the loader reports them)."""
    if amplify is None:
        return [], "repost"
    how: How = "repost"
    if isinstance(amplify, str):  # all
        names = list(missions)
    elif isinstance(amplify, list):
        names = amplify
    else:
        names = list(missions) if amplify.missions == "all" else amplify.missions
        how = amplify.how
    seen: dict[str, None] = {}
    for name in names:
        if name in missions:
            seen.setdefault(name)
    return list(seen), how


def targets(
    post: Post,
    own: Mapping[str, Account],
    others: Mapping[str, Mapping[str, Account]] | None = None,
    *,
    languages: bool = True,
) -> list[Target]:
    """Every account ``post`` goes to: ``own`` (its mission's accounts, in file order) in the
    post's languages, only those of ``accounts:`` when it names some; then, for a central post
    with ``amplify:``, the accounts of each amplifying mission of ``others`` (mission →
    accounts). ``languages=False`` ignores ``languages:`` (what the checks count as the post's
    accounts: a translation is checked against every account that could publish it)."""
    allowed = None if not languages or post.languages is None else set(post.languages)
    chosen = None if post.accounts is None else set(post.accounts)
    found = [
        Target(aid)
        for aid, account in own.items()
        if (allowed is None or account.lang in allowed) and (chosen is None or aid in chosen)
    ]
    names, how = amplifiers(post.amplify, others or {})
    if not names:
        return found
    assert others is not None
    # The original a repost reposts: the first account on the platform in the language, else
    # the first on the platform (of the post's own accounts, in file order).
    on_platform: dict[str, str] = {}
    in_language: dict[tuple[str, str], str] = {}
    for t in found:
        mine = own[t.account]
        on_platform.setdefault(mine.platform, t.account)
        in_language.setdefault((mine.platform, mine.lang), t.account)
    for name in names:
        for aid, account in others[name].items():
            original = None
            if how == "repost" and account.platform in REPOSTING:
                original = in_language.get((account.platform, account.lang)) or on_platform.get(
                    account.platform
                )
            if original is not None:
                found.append(Target(aid, repost_of=original, amplified=True))
            elif allowed is None or account.lang in allowed:
                found.append(Target(aid, amplified=True))
    return found
