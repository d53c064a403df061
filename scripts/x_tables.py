"""Write bot/text/_x_tables.py: the X counter's URL and emoji tables, taken from twitter-text.

Run after upgrading twitter-text-parser:  .venv/bin/python scripts/x_tables.py

``bot.text._entities`` finds URLs and emoji exactly as ``twitter_text.parse_tweet`` does, with
the library's own patterns. Importing the library to get them costs ~0.2 s at every start
(it parses its emoji list through ``pkg_resources`` and compiles every pattern at import), so
the patterns are copied here once into a plain module, already split the way ``_entities``
uses them. ``tests/text/test_x_tables.py`` checks that the module equals what this script
makes from the installed library, so an upgrade that changes them fails until this is rerun.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import version
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "bot/text/_x_tables.py"

_ESCAPED = re.compile(r"\\U([0-9A-Fa-f]{8})(?:-\\U([0-9A-Fa-f]{8}))?")
_SEQUENCE_SHAPE = re.compile(r"(?:\\U[0-9A-Fa-f]{8}){2,}")
_SINGLES_SHAPE = re.compile(r"(?:\\U[0-9A-Fa-f]{8}(?:-\\U[0-9A-Fa-f]{8})?)+\]")


def _decode(escaped: str) -> str:
    """Decode a run of ``\\UXXXXXXXX`` escapes."""
    return "".join(chr(int(code, 16)) for code, _ in _ESCAPED.findall(escaped))


def split_emoji_pattern(pattern: str) -> tuple[dict[str, list[str]], str]:
    """Split the library's emoji pattern ``seq|seq|...|[singles]``.

    Returns ``(sequences, singles)``: ``sequences[c]`` lists, in the library's order, the rest
    (after ``c``) of each sequence starting with ``c``; ``singles`` holds every character of
    the final class, in code point order.

    Raises:
        ValueError: ``pattern`` is not of that form with every code point written as
            ``\\UXXXXXXXX`` (a twitter-text-parser release changed how it builds it).
    """
    alternatives, separator, singles = pattern.rpartition("|[")
    sequences = alternatives.split("|")
    if not separator or not _SINGLES_SHAPE.fullmatch(singles):
        raise ValueError("twitter_text's emoji pattern does not end with a character class")
    if not all(_SEQUENCE_SHAPE.fullmatch(sequence) for sequence in sequences):
        raise ValueError("twitter_text's emoji pattern has a sequence that is not literal")
    rests: dict[str, list[str]] = {}
    for sequence in map(_decode, sequences):
        rests.setdefault(sequence[0], []).append(sequence[1:])
    characters = sorted(
        {
            chr(code)
            for first, last in _ESCAPED.findall(singles)
            for code in range(int(first, 16), int(last or first, 16) + 1)
        }
    )
    return rests, "".join(characters)


def tables() -> dict[str, object]:
    """The values the generated module holds, from the installed library."""
    from twitter_text.extract_urls import max_tco_slug_length, max_url_length
    from twitter_text.regexp.emoji import emoji
    from twitter_text.regexp.extract_url import extract_url
    from twitter_text.regexp.invalid_domain_chars import invalid_domain_chars
    from twitter_text.regexp.invalid_url_without_protocol_preceding_chars import (
        invalid_url_without_protocol_preceding_chars as no_protocol_preceding,
    )
    from twitter_text.regexp.spaces_group import spaces_group
    from twitter_text.regexp.valid_ascii_domain import valid_ascii_domain
    from twitter_text.regexp.valid_tco_url import valid_tco_url

    sequences, singles = split_emoji_pattern(emoji.pattern)
    return {
        "TWITTER_TEXT_VERSION": version("twitter-text-parser"),
        "SPACES": spaces_group,
        "INVALID_DOMAIN_CHARS": invalid_domain_chars.pattern,
        "EXTRACT_URL": (extract_url.pattern, int(extract_url.flags)),
        "VALID_ASCII_DOMAIN": (valid_ascii_domain.pattern, int(valid_ascii_domain.flags)),
        "VALID_TCO_URL": (valid_tco_url.pattern, int(valid_tco_url.flags)),
        "NO_PROTOCOL_PRECEDING": (
            no_protocol_preceding.pattern,
            int(no_protocol_preceding.flags),
        ),
        "MAX_URL_LENGTH": max_url_length,
        "MAX_TCO_SLUG_LENGTH": max_tco_slug_length,
        "EMOJI_SEQUENCES": {first: tuple(rests) for first, rests in sequences.items()},
        "EMOJI_SINGLES": singles,
    }


_TYPES = {
    "TWITTER_TEXT_VERSION": "str",
    "SPACES": "str",
    "INVALID_DOMAIN_CHARS": "str",
    "EXTRACT_URL": "tuple[str, int]",
    "VALID_ASCII_DOMAIN": "tuple[str, int]",
    "VALID_TCO_URL": "tuple[str, int]",
    "NO_PROTOCOL_PRECEDING": "tuple[str, int]",
    "MAX_URL_LENGTH": "int",
    "MAX_TCO_SLUG_LENGTH": "int",
    "EMOJI_SEQUENCES": "dict[str, tuple[str, ...]]",
    "EMOJI_SINGLES": "str",
}


def _literal(value: object) -> str:
    """``value`` as Python source, non-ASCII characters escaped (the file stays ASCII)."""
    return ascii(value)


def render() -> str:
    """The source of bot/text/_x_tables.py."""
    lines = [
        '"""The URL and emoji tables of the X counter, copied from twitter-text-parser.',
        "",
        "GENERATED by scripts/x_tables.py from the installed library: do not edit, rerun it.",
        "Patterns are (source, flags) for ``re.compile``; ``EMOJI_SEQUENCES`` maps a first",
        "character to the rest of each emoji sequence starting with it, in the library's order;",
        "``EMOJI_SINGLES`` holds the characters that are an emoji on their own.",
        '"""',
        "",
        "# ruff: noqa: E501",
        "# fmt: off",
    ]
    for name, value in tables().items():
        if name == "EMOJI_SEQUENCES":
            assert isinstance(value, dict)
            lines.append(f"{name}: {_TYPES[name]} = {{")
            lines.extend(f"    {_literal(k)}: {_literal(v)}," for k, v in value.items())
            lines.append("}")
        else:
            lines.append(f"{name}: {_TYPES[name]} = {_literal(value)}")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="ascii")
    print(TARGET, file=sys.stderr)
