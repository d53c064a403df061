"""The preview's model, without a browser: the cut where a platform would cut, entities and
paragraphs, the days the clocks change, blackouts and pauses shading their days."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from conftest import ROOT

from bot.content.loader import load
from bot.preview.model import Cell, Preview, build, cut_at, pieces
from bot.schedule.plan import plan
from bot.text.length import weighted_length


def _cells(preview: Preview, account: str) -> dict[date, Cell]:
    return {
        c.day: c for w in preview.weeks for r in w.rows if r.account == account for c in r.cells
    }


def test_the_cut_is_the_longest_prefix_the_platform_keeps() -> None:
    """X's weighted count: 140 CJK characters weigh 280, the 141st is cut; a short text whole."""
    text = "中" * 150
    assert cut_at(text, weighted_length, 280) == 140
    assert cut_at("court", weighted_length, 280) == 5


def test_pieces_mark_entities_paragraphs_and_what_lies_past_the_cut() -> None:
    """A URL cut in its middle is a URL on both sides of the cut; a newline starts a paragraph."""
    text = "Voir https://example.org/a\n#Tag @quai"
    paragraphs = pieces(text, text.index("org"))
    assert [[(p.text, p.kind, p.over) for p in para] for para in paragraphs] == [
        [("Voir ", "", False), ("https://example.", "url", False), ("org/a", "url", True)],
        [("#Tag", "hashtag", True), (" ", "", True), ("@quai", "mention", True)],
    ]


def test_the_day_the_clocks_go_back_is_marked_in_each_zone() -> None:
    """Paris goes from UTC+2 to UTC+1 on 25 October 2026 at 03:00; Beirut from UTC+3 to UTC+2
    at midnight ending 24 October (its clocks go back from 00:00 to 23:00 on the 24th)."""
    content = load(ROOT)
    now = datetime(2026, 10, 20, 8, 0, tzinfo=UTC)
    preview = build(content, plan(content, now, 14), [])
    paris = _cells(preview, "francediplo")
    beirut = _cells(preview, "francediplo_AR")
    assert paris[date(2026, 10, 25)].clocks == "UTC+02:00 → UTC+01:00"
    assert beirut[date(2026, 10, 24)].clocks == "UTC+03:00 → UTC+02:00"
    assert not beirut[date(2026, 10, 25)].clocks
    assert [d for d, c in paris.items() if c.clocks] == [date(2026, 10, 25)]


def test_blackouts_and_pauses_shade_the_days_they_cover() -> None:
    """Christmas (24 Dec 18:00 to 26 Dec 08:00, Paris) shades 24–26 December on every account;
    a paused account is shaded every day, with the reason."""
    content = load(ROOT)
    pause = content.slots.pause.model_copy(
        update={"accounts": ["francediplo_ES"], "reason": "élections"}
    )
    content = replace(content, slots=content.slots.model_copy(update={"pause": pause}))
    now = datetime(2026, 12, 21, 8, 0, tzinfo=UTC)
    preview = build(content, plan(content, now, 10), [])
    fr = _cells(preview, "francediplo")
    shaded = sorted(d for d, c in fr.items() if c.blackout)
    assert shaded == [date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26)]
    assert fr[date(2026, 12, 25)].blackout == "Christmas, no institutional posts"
    es = _cells(preview, "francediplo_ES")
    assert all(c.paused == "élections" for c in es.values())
    assert not any(c.paused for c in fr.values())


def test_drafts_are_set_apart_with_their_own_page() -> None:
    """The example's draft is listed apart and its cards say it is a draft."""
    content = load(ROOT)
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    preview = build(content, plan(content, now, 14), [])
    assert [p for p, _page in preview.drafts] == ["brouillon-communique"]
    assert all(
        item.post != "brouillon-communique"
        for w in preview.weeks
        for r in w.rows
        for c in r.cells
        for item in c.items
    )
