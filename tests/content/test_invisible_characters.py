"""Control, bidi-override and invisible-only text is refused at the character, by name.

These were accepted and sent to X: a NUL or an ESC typed as a YAML escape, a carriage return,
U+202E RIGHT-TO-LEFT OVERRIDE (readers see letters in another order than the text holds), a
text made only of zero-width spaces. Each is refused where it stands, named as U+XXXX, with
how to remove it; the marks Arabic needs (LRM, RLM, ALM) and closed isolates stay allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.text.chars import find_bad_char

Check = Callable[..., Any]  # the `check` fixture of conftest.py
POST = "content/posts/bad.yaml"

# One post with every place a published text can sit; {name} marks where the character goes.
TEMPLATE = """\
lang: fr
text: "Bonjour{text}"
translations:
  en: "Hello{translation}"
media:
  - file: media/drapeau.png
    alt: "Drapeau{alt}"
thread:
  - text: "Suite{part}"
    translations:
      en: "Next{part_translation}"
    media:
      - file: media/drapeau.png
        alt:
          en: "Flag{alt_per_language}"
"""
PLACES = ["text", "translation", "alt", "part", "part_translation", "alt_per_language"]


def post_with(place: str, typed: str) -> tuple[str, int, int]:
    """The post with ``typed`` at ``place``, and the line and column where it starts."""
    marker = "{" + place + "}"
    before = TEMPLATE.split(marker)[0]
    line = before.count("\n") + 1
    column = len(before.rsplit("\n", 1)[-1]) + 1
    body = TEMPLATE.replace(marker, typed)
    for other in PLACES:
        body = body.replace("{" + other + "}", "")
    return body, line, column


CHARACTERS = [
    # (as typed in the file, the name the message gives)
    ("\\0", "U+0000 NULL"),
    ("\\e", "U+001B ESCAPE"),
    ("\\r", "U+000D CARRIAGE RETURN"),
    ("\\x7f", "U+007F DELETE"),
    ("\\N", "U+0085 NEXT LINE"),
    ("\\x9b", "U+009B (C1 control character)"),
    ("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\\u202a", "U+202A LEFT-TO-RIGHT EMBEDDING"),
    ("\u202d", "U+202D LEFT-TO-RIGHT OVERRIDE"),
    ("\\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("\u2069", "U+2069 POP DIRECTIONAL ISOLATE"),
    ("\u2067 unclosed", "U+2067 RIGHT-TO-LEFT ISOLATE"),
]


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize(("typed", "name"), CHARACTERS, ids=[n for _, n in CHARACTERS])
def test_control_and_bidi_override_characters_are_refused_at_the_character(
    check: Check, place: str, typed: str, name: str
) -> None:
    """In text, translations, thread parts and alt texts: one error, at it, naming it."""
    body, line, column = post_with(place, typed)
    result = check({POST: body})
    assert result.code == 1, result.out + result.err
    where, message = result.only_error()
    assert where == f"{POST}:{line}:{column}"
    assert f"the text contains {name}" in message or f"control character {name}" in message
    if typed.startswith("\\"):  # typed as an escape: the hint names it
        assert f"delete the escape {typed} at column {column}" in message
    else:  # typed as itself, invisible: the hint says where to put the cursor
        assert f"delete it: put the cursor just after column {column} and press Backspace" in (
            message
        )


def test_the_message_names_the_character_without_printing_it(check: Check) -> None:
    """An override printed in the terminal would turn the rest of the error line around."""
    body, _, _ = post_with("text", "\u202e")
    result = check({POST: body})
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in result.out
    assert "\u202e" not in result.out + result.err


@pytest.mark.parametrize(
    ("typed", "names"),
    [
        ("\u200b\u200b", "U+200B ZERO WIDTH SPACE"),
        (" \u200c \u200d", "U+200C ZERO WIDTH NON-JOINER, U+200D ZERO WIDTH JOINER"),
        ("\u3164", "U+3164 HANGUL FILLER"),
        ("\u2800\u2800", "U+2800 BRAILLE PATTERN BLANK"),
        ("\u200f", "U+200F RIGHT-TO-LEFT MARK"),
    ],
)
def test_text_of_only_invisible_characters_is_refused(check: Check, typed: str, names: str) -> None:
    """A post that would look empty on X is refused, naming what it holds."""
    result = check({POST: f'lang: fr\ntext: "{typed}"\n'})
    assert result.code == 1, result.out
    where, message = result.only_error()
    first = len(typed) - len(typed.lstrip())
    assert where == f"{POST}:2:{8 + first}"
    assert message == (
        f"the text has no visible character: it holds only {names} (write the text, or delete "
        "these invisible characters; they often come from copying text out of a web page)"
    )


def test_arabic_marks_closed_isolates_joiners_and_tabs_are_accepted(check: Check) -> None:
    """LRM, RLM, ALM, a closed isolate, emoji joiners and a tab are ordinary writing."""
    text = (
        "\u0644\u0642\u0627\u0621 \u200f#COP31\u200f \u061c\u0641\u064a "
        "\u2068Quai d'Orsay\u2069 \u200eParis\u200e \U0001f468\u200d\U0001f469\u200d"
        "\U0001f467\tfin"
    )
    result = check({POST: f'lang: ar\ntext: "{text}"\n'})
    assert (result.code, result.out.strip()) == (0, "valid"), result.out


def test_a_glossary_rendering_with_an_override_is_refused(check: Check) -> None:
    """Glossary renderings are written into posts as they stand: same rule."""
    glossary = 'terms:\n  - term: COP31\n    translations:\n      en: "COP\\u202e31"\n'
    result = check({"content/glossary.yaml": glossary})
    assert result.code == 1
    where, message = result.only_error()
    assert where == "content/glossary.yaml:4:15"
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in message


@pytest.mark.parametrize(
    ("raw", "name"), [("\x01", "U+0001 START OF HEADING"), ("\x85", "U+0085 NEXT LINE")]
)
def test_a_raw_control_character_in_the_file_is_located(check: Check, raw: str, name: str) -> None:
    """libyaml reported these with no line at all, or as a puzzling indentation error."""
    result = check({POST: f"lang: fr\ntext: Bon{raw}jour\n"})
    assert result.code == 1
    assert result.only_error() == (
        f"{POST}:2:10",
        f"the file contains the invisible control character {name}, which YAML does not allow "
        "(delete it: put the cursor just after column 10 and press Backspace; most editors do "
        "not show it, and it often comes from copying text out of a PDF or a web page)",
    )


def test_an_unclosed_isolate_ends_at_the_line_break() -> None:
    """A line break closes every isolate on display, so an isolate must close on its line."""
    assert find_bad_char("\u2068Paris\u2069\n\u2067Beyrouth\u2069") is None
    bad = find_bad_char("\u2068Paris\nBeyrouth\u2069")
    assert bad is not None and bad.index == 0


def test_printable_texts_skip_the_scan_safely() -> None:
    """find_bad_char skips its scan for a text Python deems printable: no character the scan
    looks for is printable, so the shortcut never hides one."""
    from bot.text.chars import _SUSPECT

    printable = "".join(c for c in map(chr, range(0x110000)) if c.isprintable())
    assert _SUSPECT.search(printable) is None
    assert find_bad_char("Texte \u202e normal") is not None  # unprintable: scanned
    assert find_bad_char("\u3164") is not None  # printable, but nothing visible
