"""YAML as editors type it: syntax errors located, and no YAML surprise turned into data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.content.loader import load

POST = "content/posts/bad.yaml"
Check = Callable[..., Any]  # the `check` fixture of conftest.py


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        pytest.param(
            "lang: fr\ntext: Bonjour\n  publish_at: 2026-11-24 09:00\n",
            f"{POST}:3:13",
            ["YAML syntax error", "indent this line like the keys above it"],
            id="key-indented-under-a-value",
        ),
        pytest.param(
            "lang: fr\nmedia:\n  - file: media/drapeau.png\n   alt: Drapeau\ntext: Bonjour\n",
            f"{POST}:4:4",
            ["YAML syntax error", "indentation"],
            id="list-item-misaligned",
        ),
        pytest.param(
            'lang: fr\ntext: "Bonjour à tous\npublish_at: 2026-11-24 09:00\n',
            f"{POST}:2:7",
            ["quoted text is never closed", "add the closing quote"],
            id="unclosed-quote",
        ),
        pytest.param(
            "lang: fr\n\ttext: Bonjour\n",
            f"{POST}:2:1",
            ["tab character", "indent with spaces, not tabs"],
            id="tab-at-top-level",
        ),
        pytest.param(
            "lang: fr\ntext: Bonjour\ntranslations:\n\ten: Hello\n",
            f"{POST}:4:1",
            ["tab character", "indent with spaces, not tabs"],
            id="tab-in-a-block",
        ),
        pytest.param(
            "lang: fr\ntext: Un\n---\nlang: fr\ntext: Deux\n",
            f"{POST}:3:1",
            ["exactly one post", "remove the second '---'"],
            id="two-documents",
        ),
    ],
)
def test_yaml_syntax_error_points_at_what_to_fix(
    check: Check, body: str, where: str, words: list[str]
) -> None:
    """A file that is not YAML is reported at the line (and column) to edit, with a hint."""
    result = check({POST: body})
    assert result.code == 1
    assert result.only_error()[0] == where
    for word in words:
        assert word in result.only_error()[1]


def test_duplicate_key_is_refused_and_names_both_lines(check: Check) -> None:
    """YAML would silently keep the last `lang:`; validate names both lines instead."""
    result = check({POST: "lang: fr\ntext: Bonjour\nlang: en\n"})
    assert result.code == 1
    where, text = result.only_error()
    assert where == f"{POST}:3:1"
    assert "key 'lang' appears twice" in text
    assert "first on line 1" in text


@pytest.mark.parametrize(
    ("body", "where"),
    [
        pytest.param(
            "lang: &fr fr\ntext: Bonjour\nlanguages: [*fr, en]\n", f"{POST}:1:7", id="scalar"
        ),
        pytest.param(
            "lang: fr\ntext: Bonjour\nlanguages: &all [fr, en]\nthread:\n"
            "  - text: Suite\n    translations: *all\n",
            f"{POST}:3:12",
            id="list",
        ),
    ],
)
def test_yaml_anchor_and_alias_are_refused(check: Check, body: str, where: str) -> None:
    """Anchors (&x) and aliases (*x) are refused at the anchor, with what to write instead."""
    result = check({POST: body})
    assert result.code == 1
    where_found, text = result.only_error()
    assert where_found == where
    assert "anchors and aliases" in text
    assert "write the value out in full" in text


def test_merge_key_is_refused(check: Check) -> None:
    """`<<:` (a YAML 1.1 merge) is refused rather than read as a key named '<<'."""
    result = check({POST: "lang: fr\ntext: Bonjour\n<<: {slot: morning}\n"})
    assert result.code == 1
    assert result.only_error() == (
        f"{POST}:3:1",
        "YAML merge keys (<<) are not supported (write the keys out)",
    )


def test_norway_no_is_norwegian_not_false(check: Check) -> None:
    """`languages: [fr, no]` keeps 'no' (Norwegian): the error says no account publishes in it."""
    result = check({POST: "lang: fr\ntext: Bonjour\nlanguages: [fr, no]\n"})
    assert result.code == 1
    where, text = result.only_error()
    assert where == f"{POST}:3:17"
    assert "no account publishes in 'no'" in text
    assert "false" not in text.lower()


def test_norway_no_publishes_to_a_norwegian_account(example_repo: Path, check: Check) -> None:
    """With a Norwegian account, `languages: [fr, no]` is valid and means fr and Norwegian."""
    accounts = example_repo / "schedules/accounts.yaml"
    with accounts.open("a", encoding="utf-8") as handle:
        handle.write("  francediplo_NO: {lang: no, handle: francediplo_NO}\n")
    result = check({POST: "id: norsk\nlang: fr\ntext: Bonjour\nlanguages: [fr, no]\n"})
    assert result.code == 0, result.out
    content = load(example_repo)
    assert content.posts["norsk"].languages == ("fr", "no")
    assert content.accounts.accounts["francediplo_NO"].lang == "no"


def test_unquoted_slot_time_stays_the_text_typed(example_repo: Path, check: Check) -> None:
    """`times: [10:30]` is 10:30, not YAML 1.1's sexagesimal integer 630."""
    slots = example_repo / "schedules/slots.yaml"
    slots.write_text(slots.read_text(encoding="utf-8").replace("[09:30]", "[10:30]"), "utf-8")
    result = check()
    assert result.code == 0, result.out
    assert load(example_repo).slots.slots["morning"].times == ["10:30"]


def test_unquoted_date_and_number_like_text_stay_text(example_repo: Path, check: Check) -> None:
    """A plain date, `on` or `yes` in a text is the text typed, not a date or a boolean."""
    body = "id: plain\nlang: fr\ntext: on\ntranslations: {en: yes, es: 2026-11-24}\n"
    result = check({POST: body})
    assert result.code == 0, result.out
    post = load(example_repo).posts["plain"].post
    assert (post.text, post.translations) == ("on", {"en": "yes", "es": "2026-11-24"})


def test_file_that_is_not_utf8_is_reported_at_its_line(check: Check) -> None:
    """A Latin-1 file is refused at the line and column of the first bad byte, with the fix."""
    result = check({POST: "lang: fr\ntext: caf\xe9\n".encode("latin-1")})
    assert result.code == 1
    assert result.only_error() == (f"{POST}:2:10", "file is not UTF-8 text (save it as UTF-8)")
