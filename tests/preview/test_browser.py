"""The preview opened in headless chromium: what an editor sees, read from the page itself."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from preview.helpers import ARABIC_URL, DAYS, NOW, Rendered

from bot.content.loader import load
from bot.schedule.plan import plan

SCREENSHOTS = os.environ.get("DIPLOBOT_SCREENSHOTS")
"""A folder to keep the screenshots in (docs/ keeps three of them); default the test's own."""


def _shot(page: Any, tmp_path: Path, name: str, *, full: bool = False) -> Path:
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target = folder / name
    page.screenshot(path=str(target), full_page=full)
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 5_000
    return target


def test_every_delivery_of_the_next_14_days_is_on_its_account_and_local_day(
    rendered: Rendered, page: Any, tmp_path: Path
) -> None:
    """Each post due in the window sits in its account's row, on the day and at the time of
    that account's zone (Beirut an hour ahead of Paris), and nothing else is there."""
    content = load(rendered.root)
    expected = {}
    for d in plan(content, NOW, DAYS).deliveries:
        if d.part == 1:
            local = d.due.astimezone(content.account_zone(d.account))
            expected[(d.account, local.date().isoformat(), d.post)] = f"{local:%H:%M}"
    assert len(expected) > 20  # the example's posts and the test's, on four accounts
    assert any(a == "francediplo_AR" for a, _, _ in expected)
    page.goto(rendered.index)
    shown = page.eval_on_selector_all(
        "td.day a.item",
        """items => items.map(a => [a.closest('td').dataset.account,
            a.closest('td').dataset.day, a.dataset.post, a.dataset.time,
            a.closest('tr').dataset.account])""",
    )
    found = {(account, day, post): time for account, day, post, time, row in shown}
    assert all(account == row for account, _day, _post, _time, row in shown)
    assert found == expected
    assert not page.errors
    _shot(page, tmp_path, "preview-calendar.png")


def test_the_arabic_card_reads_right_to_left_with_its_url_and_hashtags_intact(
    rendered: Rendered, page: Any, tmp_path: Path
) -> None:
    """The Arabic account's card is laid out right to left, its paragraph too (dir=auto on
    Arabic text), and the URL and the French hashtags in it are exactly the editor's."""
    page.goto(rendered.page_of("test-arabe-url"))
    card = page.locator('article.card[data-account="francediplo_AR"]')
    assert card.evaluate("e => getComputedStyle(e).direction") == "rtl"
    paragraph = card.locator(".text p").first
    assert paragraph.get_attribute("dir") == "auto"
    assert paragraph.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert card.locator(".url").all_inner_texts() == [ARABIC_URL]
    assert card.locator(".hashtag").all_inner_texts() == ["#PaixLiban", "#France"]
    # Each entity is isolated and keeps its own direction: "#PaixLiban" is not drawn
    # "PaixLiban#" by the Arabic around it.
    for entity in card.locator(".url, .hashtag").all():
        style = entity.evaluate(
            "e => [getComputedStyle(e).direction, getComputedStyle(e).unicodeBidi]"
        )
        assert style == ["ltr", "isolate"]
    # The French card, drawn left to right, carries the same URL.
    french = page.locator('article.card[data-account="francediplo"] .text p').first
    assert french.evaluate("e => getComputedStyle(e).direction") == "ltr"
    assert page.locator('article.card[data-account="francediplo"] .url').inner_text() == (
        ARABIC_URL
    )
    _shot(page, tmp_path, "preview-arabic.png")


def test_a_machine_translation_over_the_limit_is_marked_where_x_would_cut_it(
    rendered: Rendered, page: Any, tmp_path: Path
) -> None:
    """The Spanish machine translation is past X's 280: the card says so, counts against
    280, marks the text beyond the cut, and is set apart as held."""
    page.goto(rendered.page_of("test-trop-long"))
    card = page.locator('article.card[data-account="francediplo_ES"]')
    assert "over-limit" in (card.get_attribute("class") or "")
    count = card.locator(".count")
    assert count.get_attribute("data-limit") == "280"
    assert int(count.get_attribute("data-count") or 0) > 280
    assert "over" in (count.get_attribute("class") or "")
    marked = card.locator("mark.over").all_inner_texts()
    assert marked and "".join(marked).strip()
    # What is not marked is what X keeps: 280 or less of it.
    kept = card.evaluate(
        """e => [...e.querySelectorAll('.text p')].map(p => [...p.childNodes]
            .filter(n => !(n.nodeType === 1 && n.tagName === 'MARK'))
            .map(n => n.textContent).join('')).join('\\n')"""
    )
    assert 250 < len(kept) <= 280
    assert card.locator(".source").inner_text() == "held"
    # The French card fits.
    french = page.locator('article.card[data-account="francediplo"]')
    assert "over-limit" not in (french.get_attribute("class") or "")
    assert french.locator("mark.over").count() == 0
    page.goto(rendered.index)
    assert page.locator("#held a", has_text="test-trop-long").count() == 1
    assert page.locator('a.item.held[data-post="test-trop-long"]').count() == 1


def test_an_image_card_shows_its_image_and_alt_text_in_the_account_language(
    rendered: Rendered, page: Any, tmp_path: Path
) -> None:
    """The image is copied beside the site and shown, with the alt text of each language."""
    page.goto(rendered.page_of("journee-droits-humains"))
    english = page.locator('article.card[data-account="francediplo_EN"]')
    image = english.locator("figure img")
    assert image.get_attribute("alt") == "French flag: three vertical stripes, blue, white and red."
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    assert (
        english.locator("figcaption.alt")
        .inner_text()
        .endswith("French flag: three vertical stripes, blue, white and red.")
    )
    assert (rendered.out / "files/media/drapeau.png").is_file()
    _shot(page, tmp_path, "preview-cards.png")


def test_html_in_a_post_is_drawn_as_text_and_never_runs(
    rendered: Rendered, page: Any, tmp_path: Path
) -> None:
    """A <script> and an onerror handler in a post's text set a flag if they run: the flag
    stays unset, no element is made from them, and the editor sees the text as written."""
    page.goto(rendered.page_of("test-html"))
    page.wait_for_load_state("load")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("script").count() == 0
    assert page.locator("article img").count() == 0
    text = page.locator('article.card[data-account="francediplo"] .text').inner_text()
    assert "<script>window.__pwned = 1</script>" in text
    assert 'onerror="window.__pwned = 2"' in text
    assert not page.errors
