"""Characters a post must not carry, found before anything is published.

What is refused, and why (docs/content.md, "Invisible and control characters", says the same to
editors):

- **Control characters** (C0 but tab and newline, DEL, C1): NUL and its kind are invisible,
  render as boxes or garbage, and a carriage return or a NUL is cut or refused by X.
- **Bidirectional overrides and embeddings** U+202A–U+202E (LRE, RLE, PDF, LRO, RLO): they make
  readers see letters in another order than the text holds ("Trojan Source", CVE-2021-42574),
  and an unclosed one turns the rest of the post around. Unicode itself recommends isolates
  instead (UAX #9, section 2.7).
- **Isolates** U+2066–U+2069 (LRI, RLI, FSI, PDI) are allowed *in pairs*: they are the
  recommended way to keep a Latin name or a hashtag in order inside an Arabic sentence, and a
  closed isolate cannot affect anything outside it. An opener not closed by PDI on the same line,
  or a PDI that closes nothing, is refused.
- **The marks** LRM, RLM and ALM (U+200E, U+200F, U+061C) stay allowed: Arabic and Hebrew
  writing needs them, and they reorder nothing by themselves.
- **Characters X refuses** (twitter-text's invalid characters U+FEFF, U+FFFE, U+FFFF), the
  other noncharacters, and unpaired surrogates.
- **A text made only of invisible characters** (zero-width spaces, joiners, fillers, marks):
  it would publish a post that looks empty.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

_C0_NAMES: Final = (
    "NULL",
    "START OF HEADING",
    "START OF TEXT",
    "END OF TEXT",
    "END OF TRANSMISSION",
    "ENQUIRY",
    "ACKNOWLEDGE",
    "BELL",
    "BACKSPACE",
    "CHARACTER TABULATION",
    "LINE FEED",
    "LINE TABULATION",
    "FORM FEED",
    "CARRIAGE RETURN",
    "SHIFT OUT",
    "SHIFT IN",
    "DATA LINK ESCAPE",
    "DEVICE CONTROL ONE",
    "DEVICE CONTROL TWO",
    "DEVICE CONTROL THREE",
    "DEVICE CONTROL FOUR",
    "NEGATIVE ACKNOWLEDGE",
    "SYNCHRONOUS IDLE",
    "END OF TRANSMISSION BLOCK",
    "CANCEL",
    "END OF MEDIUM",
    "SUBSTITUTE",
    "ESCAPE",
    "FILE SEPARATOR",
    "GROUP SEPARATOR",
    "RECORD SEPARATOR",
    "UNIT SEPARATOR",
)
_OTHER_NAMES: Final = {0x7F: "DELETE", 0x85: "NEXT LINE", 0xA0: "NO-BREAK SPACE"}

_OPENERS: Final = frozenset("\u2066\u2067\u2068")  # LRI, RLI, FSI
_PDI: Final = "\u2069"
_EMBEDDINGS: Final = frozenset("\u202a\u202b\u202c")  # LRE, RLE, PDF
_OVERRIDES: Final = frozenset("\u202d\u202e")  # LRO, RLO
# Every character worth a look, in one class so that a clean text costs one C-level scan.
_SUSPECT: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff\ufdd0-\ufdef\ufffe\uffff"
    "\ud800-\udfff\n]"
    "|[\U0001fffe\U0001ffff\U0002fffe\U0002ffff\U0003fffe\U0003ffff\U0004fffe\U0004ffff"
    "\U0005fffe\U0005ffff\U0006fffe\U0006ffff\U0007fffe\U0007ffff\U0008fffe\U0008ffff"
    "\U0009fffe\U0009ffff\U000afffe\U000affff\U000bfffe\U000bffff\U000cfffe\U000cffff"
    "\U000dfffe\U000dffff\U000efffe\U000effff\U000ffffe\U000fffff\U0010fffe\U0010ffff]"
)
# Shown as nothing at all: format characters and blank fillers that fake an empty post.
_BLANK: Final = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))  # variation selectors
)

DELETE = "{delete}"
"""Placeholder in hints for how to delete the character, which only the caller knows: it
depends on whether the file holds the character itself or an escape such as ``\\e``."""


_BIDI_ADVICE: Final = (
    ". To keep a Latin word in order inside Arabic text, use U+200F RIGHT-TO-LEFT MARK or "
    "U+200E LEFT-TO-RIGHT MARK next to it, or wrap it between U+2068 FIRST STRONG ISOLATE and "
    "U+2069 POP DIRECTIONAL ISOLATE"
)


@dataclass(frozen=True, slots=True)
class BadChar:
    """The first character that keeps a text from being published, and what to do."""

    index: int  # position in the text
    message: str
    hint: str  # contains DELETE where the caller says how to delete the character

    def hint_with(self, delete: str = "delete it") -> str:
        return self.hint.replace(DELETE, delete)


def char_name(ch: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: how messages name a character (never printing it)."""
    cp = ord(ch)
    name = _C0_NAMES[cp] if cp < 0x20 else _OTHER_NAMES.get(cp) or unicodedata.name(ch, "")
    if not name:
        if 0xD800 <= cp <= 0xDFFF:
            name = "(half of a surrogate pair)"
        elif 0x80 <= cp <= 0x9F:
            name = "(C1 control character)"
        elif cp >= 0xFDD0 and (0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE):
            name = "(not a character)"
    return f"U+{cp:04X} {name}".rstrip()


def find_bad_char(text: str) -> BadChar | None:
    """The first character of ``text`` that may not be published (see the module's rules)."""
    if text.isprintable():  # C-fast; every _SUSPECT character is unprintable (a test checks)
        return _only_invisible(text)
    open_isolates: list[int] = []
    for match in _SUSPECT.finditer(text):
        i, ch = match.start(), match.group()
        if ch == "\n":
            if open_isolates:
                return _unclosed(open_isolates[0], text)
            continue
        if ch in _OPENERS:
            open_isolates.append(i)
            continue
        if ch == _PDI:
            if open_isolates:
                open_isolates.pop()
                continue
            return BadChar(
                i,
                f"the text contains {char_name(ch)}, which closes an isolate that was never opened",
                DELETE,
            )
        return _refused(i, ch)
    if open_isolates:
        return _unclosed(open_isolates[0], text)
    return _only_invisible(text)


def _refused(index: int, ch: str) -> BadChar:
    name = char_name(ch)
    if ch in _OVERRIDES or ch in _EMBEDDINGS:
        return BadChar(
            index,
            f"the text contains {name}, a bidirectional control that changes the order in "
            "which letters are shown, so readers would not see what the text says",
            DELETE + _BIDI_ADVICE,
        )
    if ch in "\ufeff\ufffe\uffff":
        what = "a byte order mark" if ch == "\ufeff" else "not a character"
        return BadChar(
            index,
            f"the text contains {name} ({what}); X refuses posts that contain it",
            DELETE,
        )
    if "\ud800" <= ch <= "\udfff":
        return BadChar(
            index,
            f"the text contains {name}: half of a character, which cannot be published",
            "write the character itself (e.g. 😀) instead of its two \\u halves",
        )
    if ord(ch) >= 0xFDD0:
        return BadChar(
            index,
            f"the text contains {name}, which is not a character",
            DELETE,
        )
    hint = DELETE
    if ch == "\r":
        hint += "; for a new line, use a real line break, or \\n inside double quotes"
    return BadChar(
        index,
        f"the text contains the invisible control character {name}, which would be "
        "published as garbage or refused by X",
        hint,
    )


def _unclosed(index: int, text: str) -> BadChar:
    return BadChar(
        index,
        f"the text contains {char_name(text[index])}, which is not closed by "
        "U+2069 POP DIRECTIONAL ISOLATE on the same line, so the rest of the post may be "
        "shown in the wrong direction",
        "add U+2069 where the isolated words end, or " + DELETE,
    )


def is_invisible(ch: str) -> bool:
    """Whether ``ch`` shows as nothing: whitespace, a format character or a blank filler."""
    return ch.isspace() or ch in _BLANK or unicodedata.category(ch) in ("Cf", "Zs", "Zl", "Zp")


def _only_invisible(text: str) -> BadChar | None:
    first = -1
    names: list[str] = []
    for i, ch in enumerate(text):
        if not is_invisible(ch):
            return None
        if ch.isspace():
            continue
        if first < 0:
            first = i
        name = char_name(ch)
        if name not in names and len(names) < 3:
            names.append(name)
    if first < 0:
        return None  # only whitespace: the caller reports an empty text
    return BadChar(
        first,
        "the text has no visible character: it holds only " + ", ".join(names),
        "write the text, or delete these invisible characters; they often come from copying "
        "text out of a web page",
    )
