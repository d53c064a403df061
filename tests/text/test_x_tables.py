"""The X counter's generated tables (bot/text/_x_tables.py) are the installed library's.

``scripts/x_tables.py`` copies twitter-text-parser's URL and emoji patterns into a module so
that counting does not import the library; if an upgrade changes them, this fails until the
script is run again. The spans found with the copies are compared with the library's own
functions in ``tests/text/test_length.py``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import twitter_text
from twitter_text.regexp.emoji import emoji

from bot.text import _x_tables

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("x_tables", ROOT / "scripts/x_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_tables_equal_the_installed_librarys() -> None:
    expected = _script().tables()
    found = {name: getattr(_x_tables, name) for name in expected}
    assert found == expected


def test_generated_module_is_what_the_script_writes() -> None:
    text = (ROOT / "bot/text/_x_tables.py").read_text(encoding="ascii")
    assert text == _script().render()


def test_emoji_tables_rebuild_the_librarys_pattern() -> None:
    """Independent of the script's splitting: the sequences, in order, then the singles
    class, are the library's alternation (the order decides which sequence wins)."""
    sequences = list(emoji.pattern.rpartition("|[")[0].split("|"))
    rebuilt = [first + rest for first, rests in _x_tables.EMOJI_SEQUENCES.items() for rest in rests]
    decoded = [s.encode("ascii").decode("unicode_escape") for s in sequences]
    assert sorted(rebuilt) == sorted(decoded)
    for first, rests in _x_tables.EMOJI_SEQUENCES.items():
        assert [first + r for r in rests] == [d for d in decoded if d[0] == first]
    every_character = " ".join(map(chr, range(0x21, 0x30000)))
    singles = {m.group() for m in emoji.finditer(every_character)}
    assert singles == set(_x_tables.EMOJI_SINGLES)


def test_counting_does_not_import_twitter_text() -> None:
    probe = (
        "import sys\n"
        "from bot.text import measure\n"
        "from bot.text._entities import url_spans, emoji_spans\n"
        "t = 'Voir https://www.diplomatie.gouv.fr/fr et t.co/abc \U0001f1eb\U0001f1f7 #COP31'\n"
        "assert url_spans(t) and emoji_spans(t) and measure(t).weighted\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('twitter_text', 'pkg_resources')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]", done.stdout
    assert twitter_text.__name__  # the library itself is installed for the tests above
