"""The pipeline's seams (bot/pipeline.py): rows are a pure join of the plan's per-part
deliveries and the localized variants, and the slot-pin rule lives in one place."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from bot import pipeline
from bot.content.loader import load
from bot.schedule.plan import Pin
from bot.state import open_store, state_url
from bot.state.ledger import MediaRef
from bot.state.pins import Pins
from bot.translate.localize import Variant

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
CHANNELS = {
    "francediplo": "x",
    "francediplo_EN": "outbox",
    "francediplo_AR": "x",
    "francediplo_ES": "x",
}


def test_rows_join_each_planned_part_with_its_variant_in_part_order(repo: Path) -> None:
    """A split machine translation adds rows on that account only; every row carries the
    plan's due time, the account's channel and the content's commit; parts keep their order."""
    content = load(repo)
    entry = content.posts["conference-soudan"]
    deliveries = pipeline.due_now(content, entry, ["francediplo", "francediplo_ES"], NOW)
    assert [(d.account, d.part) for d in deliveries][:3] == [("francediplo", p) for p in (1, 2, 3)]
    variants = [
        Variant(entry.id, "fr", part, (f"fr {part}",), "human", "ready") for part in (3, 1, 2)
    ] + [
        Variant(entry.id, "es", 1, ("es 1",), "machine", "ready"),
        Variant(entry.id, "es", 2, ("es 2a", "es 2b"), "machine", "ready"),
        Variant(entry.id, "es", 3, ("es 3",), "cached", "ready"),
    ]
    fr, es = pipeline.rows(content, deliveries, variants, CHANNELS, ("abc123", "Ed <e@d>"))
    assert (fr.account, es.account) == ("francediplo", "francediplo_ES")
    assert [(r.part, r.text) for r in fr.rows] == [(1, "fr 1"), (2, "fr 2"), (3, "fr 3")]
    assert [(r.part, r.text) for r in es.rows] == [
        (1, "es 1"),
        (2, "es 2a"),
        (3, "es 2b"),
        (4, "es 3"),
    ]
    for row in fr.rows + es.rows:
        assert (row.due_at, row.channel, row.revision, row.author) == (
            NOW,
            "x",
            "abc123",
            "Ed <e@d>",
        )
    assert fr.refused is None and es.refused is None


def test_rows_put_each_image_with_its_variants_alt_text_on_the_parts_first_row(
    repo: Path,
) -> None:
    """The alt text is the variant's (settled by localize): rows translate nothing."""
    content = load(repo)
    entry = content.posts["journee-droits-humains"]
    deliveries = pipeline.due_now(content, entry, ["francediplo_AR"], NOW)
    variants = [Variant(entry.id, "ar", 1, ("نص", "تتمة"), "machine", "ready", alts=("علم فرنسا",))]
    (ar,) = pipeline.rows(content, deliveries, variants, CHANNELS)
    assert ar.rows[0].media == (MediaRef("content/media/drapeau.png", "علم فرنسا"),)
    assert ar.rows[1].media == ()  # the split's second row is a reply without the image


def test_rows_hold_a_failed_translation_and_refuse_one_that_needs_a_person(repo: Path) -> None:
    """A failed translation (worth trying again) gives HELD rows, one per part, without text;
    one held for a person (an entity lost) is refused with nothing to hold; a language
    without variants is refused."""
    content = load(repo)
    entry = content.posts["conference-soudan"]
    accounts = ["francediplo_AR", "francediplo_ES", "francediplo_EN"]
    deliveries = pipeline.due_now(content, entry, accounts, NOW)
    ok = [
        Variant(entry.id, lang, p, (f"{lang} {p}",), "machine", "ready")
        for lang in ("ar", "es")
        for p in (1, 2, 3)
    ]
    variants = [
        *(v for v in ok if (v.lang, v.part) not in {("ar", 2), ("es", 3)}),
        Variant(entry.id, "ar", 2, (), "machine", "failed", "engine down (will retry)"),
        Variant(entry.id, "es", 3, (), "machine", "held", "held: a URL was lost"),
    ]
    ar, es, en = pipeline.rows(content, deliveries, variants, CHANNELS)
    assert ar.rows == () and ar.refused == "part 2 in ar is failed: engine down (will retry)"
    assert ar.held_reason == "awaiting translation into ar: engine down"
    assert [(r.part, r.text) for r in ar.held] == [(1, ""), (2, ""), (3, "")]
    assert es.rows == () and es.held == () and es.refused is not None
    assert es.refused.startswith("part 3 in es is held")
    assert en.refused == "the post is not published in 'en'" and en.held == ()


class CountingPins(Pins):
    saves = 0

    def save(self, pins: Mapping[str, Pin], keep: set[str] | None = None) -> None:
        self.saves += 1
        super().save(pins, keep)


def test_plan_saves_slot_pins_only_when_they_change_and_a_preview_never(repo: Path) -> None:
    """The one pin rule: a preview (``plan --from``) saves nothing; the first real plan saves
    the occurrences it gave; planning again with nothing new saves nothing; a slot post
    removed frees its occurrence."""
    content = load(repo)
    pins = CountingPins(open_store(state_url(repo, None)).engine)
    preview = pipeline.plan(content, NOW, 7, pins, save=False)
    assert preview.new_pins and pins.load() == {} and pins.saves == 0
    first = pipeline.plan(content, NOW, 7, pins)
    assert pins.load() == first.pins and pins.saves == 1
    again = pipeline.plan(content, NOW, 7, pins)
    assert again.pins == first.pins and again.new_pins == {} and pins.saves == 1
    (repo / "content/posts/queue/team-france-export.yaml").unlink()
    gone = pipeline.plan(load(repo), NOW, 7, pins)
    assert pins.saves == 2 and set(pins.load()) == set(gone.pins) == set(first.pins) - {
        "queue/team-france-export"
    }
