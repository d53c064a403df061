"""The preview's model, without a browser: the cut where a platform would cut, entities and
paragraphs, the days the clocks change, blackouts and pauses shading their days."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from preview.helpers import NOW, ROOT, example_copy

from bot.content.loader import load
from bot.preview.model import Cell, Image, Preview, build, cut_at, page_name, pieces
from bot.schedule.plan import plan
from bot.text.length import weighted_length
from bot.translate.localize import Variant


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


def _with_accounts(tmp_path: Path, extra: str) -> Path:
    root = example_copy(tmp_path / "repo")
    accounts = root / "schedules/accounts.yaml"
    accounts.write_text(accounts.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return root


def test_each_card_counts_and_limits_as_its_accounts_platform_does(tmp_path: Path) -> None:
    """One English text on X and on Bluesky: X counts the long URL as 23 and it fits; Bluesky
    counts every character of it, is past 300 and is marked where it would cut. Each card
    carries its platform's name; Mastodon's has 500."""
    root = _with_accounts(
        tmp_path,
        "  diplo_bsky: {lang: en, platform: bluesky, handle: francediplo.bsky.social,"
        " did: 'did:plc:abc123'}\n"
        "  diplo_masto: {lang: en, platform: mastodon, handle: francediplo,"
        " instance: 'https://mastodon.social'}\n",
    )
    content = load(root)
    url = "https://www.diplomatie.gouv.fr/en/" + "x" * 200
    text = "France welcomes the agreement. " * 3 + url
    variants = [
        Variant("bilan-cop31", lang, 1, (text if lang == "en" else "Texte",), "human", "ready")
        for lang in content.posts["bilan-cop31"].languages
    ]
    preview = build(content, plan(content, NOW, 14), variants, only={"bilan-cop31"})
    (page,) = preview.posts
    cards = {c.account: c for c in page.cards}
    x, bsky, masto = cards["francediplo_EN"], cards["diplo_bsky"], cards["diplo_masto"]
    assert (x.platform, bsky.platform, masto.platform) == ("X", "Bluesky", "Mastodon")
    (x_text,) = x.parts[0].texts
    (b_text,) = bsky.parts[0].texts
    (m_text,) = masto.parts[0].texts
    assert (x_text.limit, b_text.limit, m_text.limit) == (280, 300, 500)
    assert x_text.count == weighted_length(text) < 280 and not x.over
    assert b_text.count == len(text) > 300 and bsky.over
    kept = "".join(p.text for para in b_text.paragraphs for p in para if not p.over)
    assert len(kept) == 300 and text.startswith(kept)
    assert m_text.count == len(text) - len(url) + 23 and not masto.over


def test_a_variant_awaiting_translation_shows_the_text_it_will_come_from() -> None:
    """A failed translation: no text in the account's language, the reason, and the editor's
    source text (French) to judge meanwhile."""
    content = load(ROOT)
    failed = Variant("bilan-cop31", "ar", 1, (), "machine", "failed", "engine down (will retry)")
    preview = build(content, plan(content, NOW, 14), [failed], only={"bilan-cop31"})
    cards = {c.account: c for c in preview.posts[0].cards}
    assert set(cards) == {"francediplo_AR", "france_ar_facebook"}  # made for no platform: both
    card = cards["francediplo_AR"]
    assert (card.source, card.reason) == ("awaiting translation", "engine down")
    part = card.parts[0]
    assert part.texts == () and part.pending is not None and part.pending_lang == "fr"
    source = "".join(p.text for para in part.pending.paragraphs for p in para)
    assert source.startswith("🌍 #COP31 : la France salue")
    assert preview.held == (("bilan-cop31", page_name("bilan-cop31"), "ar: engine down"),)


def test_an_image_path_is_normalised_inside_the_site() -> None:
    """However the post spells its path inside content/, the site's copy stays in files/."""
    assert Image("media/drapeau.png", None).src == "files/media/drapeau.png"
    assert Image("a/../../content/media/x.png", None).src == "files/media/x.png"
    assert Image("media/./sub/../x.png", None).src == "files/media/x.png"


def test_threads_on_a_platform_without_reply_chains_are_drawn_as_published() -> None:
    """conference-soudan: a reply chain on X and Mastodon (3 parts), one post joined on
    Telegram and Weibo (the parts fit), and Facebook's own one-part version."""
    content = load(ROOT)
    entry = content.posts["conference-soudan"]
    variants = [
        Variant(
            entry.id, lang, part, (f"{lang} n{part} {part}/{parts}",), "human", "ready", platform=p
        )
        for lang in entry.languages
        for p in content.platforms_of(lang)
        for parts in [entry.parts_for(p)]
        for part in range(1, parts + 1)
    ]
    preview = build(content, plan(content, NOW, 14), variants, only={entry.id})
    cards = {c.account: c for c in preview.posts[0].cards}
    x, masto = cards["francediplo"], cards["france_fr_mastodon"]
    assert (len(x.parts), x.joined, len(masto.parts), masto.joined) == (3, "", 3, "")
    telegram = cards["france_es_telegram"]
    assert (len(telegram.parts), telegram.joined) == (1, "joined")
    joined = "".join(p.text for para in telegram.parts[0].texts[0].paragraphs for p in para)
    assert joined == "es n1es n2es n3"  # each "k/3" dropped, one paragraph each
    assert len(telegram.parts[0].texts[0].paragraphs) == 3
    facebook = cards["france_ar_facebook"]
    assert (len(facebook.parts), facebook.joined, facebook.own_version) == (1, "", True)
    assert not x.own_version
