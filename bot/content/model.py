"""The editors' file formats, as pydantic models.

These models are the contract of the content repository: the keys shown in DESIGN.md, plus a
few additions documented in docs/content.md. The JSON Schemas that editors' editors use are
generated from them (``diplobot schema``), so a key added here is a key documented there.

Only the *shape* of each file is checked here. Checks that need other files (a slot exists, a
language has an account, a media file is an image) live in :mod:`bot.content.checks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.platforms import DEFAULT_PLATFORM, PLATFORMS, Prices

if TYPE_CHECKING:
    PlatformName = str
else:  # the registered names: Literal["x"] today, so the JSON Schema says so
    PlatformName = Literal[tuple(PLATFORMS)]
_DEFAULT = PLATFORMS[DEFAULT_PLATFORM]  # the texts below describe the default platform
_LIMITS = _DEFAULT.limits
_PRICES = _DEFAULT.prices or Prices(post=0.0, post_with_url=0.0, currency="USD")

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Language = Annotated[
    str,
    Field(
        description=(
            "Language tag (BCP 47): an ISO 639-1 code, e.g. fr, en, ar, es, optionally with a "
            "script or region: zh-Hans, zh-Hant, pt-BR"
        ),
        examples=["fr", "zh-Hans"],
    ),
]
LocalDateTime = Annotated[
    str,
    Field(
        description=(
            "Local date and time 'YYYY-MM-DD HH:MM' in the default time zone, "
            "or with an explicit offset: '2026-11-24T09:00+01:00'"
        ),
        pattern=r"^\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:?\d{2})?$",
        examples=["2026-11-24 09:00"],
    ),
]


def _machine_translated() -> Any:
    return Field(
        default_factory=dict,
        description=(
            "Written by 'diplobot translate --write': marks translations that a machine wrote "
            "and nobody has approved yet ('backend:hash'). Delete a line, or edit the "
            "translation, to approve it."
        ),
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Set every field once on a bare instance, as the class is defined, before any is
        validated. The service keeps posts compacted (``bot/content/checks.py: compacted``):
        their fields in CPython's per-instance values, whose keys all instances of a class
        share. CPython gives those keys less room each time an instance is made while none
        is in them — as pydantic makes its instances — so ~40 models validated and not
        compacted first (invalid posts, another command's) would leave no room, and every
        compacted one would hold a dict of its own again (~300 bytes more a post). Once the
        keys are in, the room only shrinks to what they fill."""
        super().__pydantic_init_subclass__(**kwargs)
        bare = object.__new__(cls)
        for name in cls.model_fields:
            object.__setattr__(bare, name, None)


class Media(_Strict):
    """An image attached to a post or a thread part."""

    file: str = Field(
        description="Path of the image relative to content/, e.g. media/cop31.jpg",
        examples=["media/cop31.jpg"],
    )
    alt: str | dict[Language, str] | None = Field(
        default=None,
        description=(
            f"Alternative text for screen readers (at most {_LIMITS.alt:,} characters on "
            f"{_DEFAULT.display}; each platform has its own limit, and Telegram none): one text "
            "in the "
            "post's language (machine-translated for the others), or a map per language"
        ),
    )


class Part(_Strict):
    """A follow-up part of a thread, shaped like the post's own text."""

    text: str = Field(description="Text of this part, in the post's language")
    translations: dict[Language, str] = Field(
        default_factory=dict, description="Human translations of this part, per language"
    )
    media: list[Media] = Field(
        default_factory=list,
        description=(
            f"Images (up to {_LIMITS.media} on {_DEFAULT.display}; each platform has its limit)"
        ),
    )
    machine_translated: dict[Language, str] = _machine_translated()


class PlatformText(_Strict):
    """A post's own version for one platform (a longer Facebook text, a shorter Bluesky one).

    Accounts on that platform publish it instead of the post's text; accounts elsewhere never
    see it. Human beats machine as for the post: a language's text is the version's human
    translation, else (when the version has no ``text`` of its own) the post's, else a machine
    translation of the version's text.
    """

    text: str | None = Field(
        default=None,
        description=(
            "This platform's text in the post's `lang` (default: the post's text); a version "
            "with its own text is translated from it, never from the post's"
        ),
    )
    translations: dict[Language, str] = Field(
        default_factory=dict,
        description="Human translations of this platform's text, per language",
    )
    thread: list[Part] | None = Field(
        default=None,
        description=(
            "This platform's follow-up parts (default: the post's thread; [] for none, e.g. "
            "when `text` already says everything)"
        ),
    )


MISSION_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
MissionName = Annotated[
    str,
    Field(
        description="A mission: the name of its folder under missions/",
        pattern=MISSION_PATTERN,
        examples=["ambassade-chine"],
    ),
]


class Amplify(_Strict):
    """Missions that amplify a central post, and how."""

    missions: list[MissionName] | Literal["all"] = Field(
        description="The missions (folders under missions/), or all"
    )
    how: Literal["repost", "copy"] = Field(
        default="repost",
        description=(
            "repost: each mission account reposts the central account's post on the same "
            "platform (X, Mastodon, Bluesky), a copy elsewhere; copy: each mission account "
            "publishes its own localized copy"
        ),
    )


class Post(_Strict):
    """One announcement: one file under content/posts/."""

    id: str | None = Field(
        default=None,
        description=(
            "Stable identity of the post. Default: the file's path under content/posts "
            "without extension. Renaming the file never re-publishes a post that has an id."
        ),
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        max_length=200,
    )
    lang: Language = Field(description="Language the editor wrote the text in")
    publish_at: LocalDateTime | None = Field(
        default=None,
        description="When to publish. Leave out both publish_at and slot for a draft.",
    )
    slot: str | None = Field(
        default=None, description="Name of a slot in schedules/slots.yaml (instead of publish_at)"
    )
    timezone: str | None = Field(
        default=None,
        description="IANA zone for publish_at when it has no offset (default: accounts.yaml's)",
        examples=["Europe/Paris"],
    )
    text: str = Field(
        description=(
            f"The post's text in `lang`; it must fit every account's platform ("
            f"{_DEFAULT.display}: {_LIMITS.text} weighted characters)"
        )
    )
    translations: dict[Language, str] = Field(
        default_factory=dict,
        description="Human translations per language; they always win over machine translation",
    )
    machine_translated: dict[Language, str] = _machine_translated()
    languages: list[Language] | None = Field(
        default=None,
        description="Publish only in these languages (default: every account's language)",
    )
    media: list[Media] = Field(
        default_factory=list,
        description=(
            f"Images (up to {_LIMITS.media} on {_DEFAULT.display}; each platform has its limit)"
        ),
    )
    thread: list[Part] = Field(default_factory=list, description="Follow-up parts, in order")
    platforms: dict[PlatformName, PlatformText] = Field(
        default_factory=dict,
        description=(
            "Per-platform versions, e.g. facebook: {text: a longer text}; accounts on that "
            "platform publish the version instead of the text above"
        ),
    )
    review: Literal["required", "none"] | None = Field(
        default=None,
        description="required: machine translations wait for approval (default: the account's)",
    )
    overflow: Literal["hold", "thread"] = Field(
        default="hold",
        description=(
            "When a machine translation exceeds its platform's limit: hold it for a human, "
            "or split "
            "it into a numbered thread"
        ),
    )
    accounts: list[str] | None = Field(
        default=None,
        description=(
            "Publish only on these accounts of the post's mission (default: every account of "
            "its mission in the post's languages)"
        ),
    )
    amplify: list[MissionName] | Literal["all"] | Amplify | None = Field(
        default=None,
        description=(
            "A central post only: missions whose accounts amplify it, e.g. [ambassade-chine] "
            "or all (a repost where the platform can, else a copy), or "
            "{missions: [ambassade-chine], how: copy}"
        ),
    )


class Account(_Strict):
    """One publishing account (credentials never live here)."""

    lang: Language = Field(description="The language this account publishes in")
    platform: PlatformName = Field(default=DEFAULT_PLATFORM, description="Where it publishes")
    handle: str = Field(
        description=(
            "The account's handle, without @: on X 1-15 letters, digits or _; on Bluesky a "
            "domain (diplo.bsky.social); on Mastodon the user name on `instance`; on Facebook "
            "the page's name; on Telegram the channel's @name"
        ),
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,252}$",
    )
    instance: str | None = Field(
        default=None,
        description="Mastodon: the instance's URL, e.g. https://mastodon.social",
        examples=["https://mastodon.social"],
    )
    did: str | None = Field(
        default=None,
        description="Bluesky: the account's DID (default: resolved from the handle)",
        pattern=r"^did:[a-z]+:[A-Za-z0-9._:%-]+$",
    )
    page: str | None = Field(
        default=None, description="Facebook: the page's numeric id", pattern=r"^[0-9]{1,30}$"
    )
    chat: str | None = Field(
        default=None,
        description="Telegram: the channel, @name or numeric id (default: @handle)",
        pattern=r"^(@[A-Za-z0-9_]{5,32}|-?[0-9]{1,20})$",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA zone the account's audience lives in (default: the file's timezone)",
    )
    daily_cap: int | None = Field(
        default=None, ge=1, description="Warn when more posts than this are planned in one day"
    )
    review: Literal["required", "none"] | None = Field(
        default=None, description="Default review policy for machine translations"
    )


class Pricing(_Strict):
    """The X API's pay-per-use prices, used for the cost estimate in ``diplobot plan``."""

    # Finite: `.inf` would make every cost in `plan` (and its JSON) infinite.
    post: float = Field(
        default=_PRICES.post, ge=0, allow_inf_nan=False, description="Price of one post"
    )
    post_with_url: float = Field(
        default=_PRICES.post_with_url,
        ge=0,
        allow_inf_nan=False,
        description="Price of a post with a URL",
    )
    currency: str = Field(default=_PRICES.currency)


class AccountsFile(_Strict):
    """schedules/accounts.yaml, or a mission's missions/<name>/accounts.yaml"""

    mission: MissionName | None = Field(
        default=None,
        description=(
            "schedules/accounts.yaml only: the name of the central mission (default: central); "
            "a mission's name is its folder's"
        ),
    )
    timezone: str = Field(
        description="Default IANA time zone for publish_at and slots", examples=["Europe/Paris"]
    )
    daily_cap: int | None = Field(
        default=None, ge=1, description="Default daily cap for every account"
    )
    pricing: Pricing = Field(default_factory=Pricing)
    accounts: dict[str, Account] = Field(
        description="Accounts by id; the id names credentials: DIPLOBOT_<ID>_ACCESS_TOKEN",
        min_length=1,
    )


Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_ALL_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LocalTime = Annotated[
    str,
    Field(
        pattern=r"^([01]?\d|2[0-3]):[0-5]\d$",
        description="Local time HH:MM (no quotes needed)",
        examples=["09:00"],
    ),
]


class Slot(_Strict):
    """A named weekly posting slot: posts with ``slot:`` take its next free occurrence."""

    days: list[Day] = Field(
        default_factory=lambda: list(_ALL_DAYS), description="Weekdays (default: every day)"
    )
    times: list[LocalTime] = Field(description="Times of day, HH:MM", min_length=1)
    timezone: str | None = Field(
        default=None,
        description=(
            "IANA zone of the times (default: accounts.yaml's timezone), or 'account' for "
            "each account's own zone"
        ),
    )
    capacity: int = Field(default=1, ge=1, description="How many posts one occurrence takes")


class Blackout(_Strict):
    """A period when nothing is published (a national mourning, an election silence)."""

    from_: LocalDateTime = Field(alias="from", description="Start, local time")
    until: LocalDateTime = Field(description="End, local time (exclusive)")
    reason: str = Field(description="Why; shown in the plan")
    accounts: list[str] | None = Field(
        default=None, description="Only these accounts (default: all)"
    )
    timezone: str | None = Field(default=None, description="Zone of from/until")


class Pause(_Strict):
    """A switch editors commit to stop publishing; paused deliveries wait."""

    all: bool = Field(default=False, description="Pause every account")
    accounts: list[str] = Field(default_factory=list, description="Pause only these accounts")
    reason: str = Field(default="", description="Why; shown in the plan")


class SlotsFile(_Strict):
    """schedules/slots.yaml"""

    slots: dict[str, Slot] = Field(default_factory=dict)
    blackouts: list[Blackout] = Field(default_factory=list)
    pause: Pause = Field(default_factory=Pause)


class Term(_Strict):
    """A glossary term: never translated, or translated one fixed way per language."""

    term: str = Field(min_length=1, description="The term as written in source texts")
    translations: dict[Language, str] = Field(
        default_factory=dict, description="Fixed rendering per language (default: unchanged)"
    )


class GlossaryFile(_Strict):
    """content/glossary.yaml, or a mission's missions/<name>/glossary.yaml (its terms
    override or extend the central glossary for that mission's posts)"""

    terms: list[Term] = Field(default_factory=list)


SCHEMAS: dict[str, type[BaseModel]] = {
    "post": Post,
    "accounts": AccountsFile,
    "slots": SlotsFile,
    "glossary": GlossaryFile,
}
"""File kind → model; ``diplobot schema`` writes one JSON Schema per entry."""
