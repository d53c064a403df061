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


def _outcome(text: str) -> tuple[Any, ...]:
    from bot.content.yamlsrc import YamlProblem, parse_yaml

    try:
        doc = parse_yaml(text, "p.yaml")
    except YamlProblem as exc:
        return ("problem", exc.problem)
    return ("doc", doc.data, doc.values, doc.keys)


_ODD_YAML = [
    'id: a-1\nlang: fr\npublish_at: 2026-12-01 10:00\ntext: "Un texte #COP31"\n'
    "translations:\n  en: 'It''s'\nmedia:\n  - file: media/x.png\n    alt: Drapeau\n",
    'a: 1\nb: 0x1F\nc: "q"\nd: no\ne: 10:30\nf: ~\ng: 1e3\nh: .inf\ni: -.inf\nj: .nan\n',
    "a: 1\na: 2\n",
    '"k": v\nk: w\n',
    "1: a\n2: b\ntrue: c\nnull: d\n",
    "<<: a\n",
    'a: !!str 12\nb: !!int "7"\nc: !x y\nd: !!float 1\n',
    "k: " + "9" * 150 + "\n",
    "k: '" + "9" * 150 + "'\n",
    "a:\n  - 1\n  - x: y\n    y: [1, 2, {z: w}]\n",
    "a: &x 1\nb: *x\n",
    "--- a\n--- b\n",
    "plain",
    "",
    "a: b: c",
    "a: 1\n? [b]\n: c\n",
    "a:\n  b:\n    c: d\n  b2: ''\n",
    "- a\n- b: 1\n  c: 2\n",
    "a: |\n  deux\n  lignes\nb: >\n  plié\n",
]


@pytest.mark.parametrize("seed", range(3))
def test_inlined_scalars_build_what_the_general_path_builds(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The builder's inlined common case (plain keys, untagged values) is an exact shortcut:
    data, every location and every problem are those of the general path, on odd YAML and
    on random mutations of it."""
    import random

    from bot.content.yamlsrc import _Builder

    rng = random.Random(seed)
    texts = list(_ODD_YAML)
    for base in _ODD_YAML:
        for _ in range(40):
            chars = list(base)
            for _ in range(rng.randint(1, 3)):
                chars.insert(rng.randrange(len(chars) + 1), rng.choice(":-\"'#[]{},!&*?|> \n0aé1."))
            texts.append("".join(chars))
    inlined = [_outcome(t) for t in texts]
    monkeypatch.setattr(_Builder, "inline", False)
    assert [_outcome(t) for t in texts] == inlined
