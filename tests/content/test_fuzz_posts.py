"""Fuzzing post files: whatever an editor commits ends in clear problems or a valid plan.

Hypothesis writes one post file into a copy of the bundled example repository and runs
validation and the plan in-process, the way `diplobot validate` and `diplobot plan` do. The
property: no exception escapes; an invalid file gives errors that each name a file and a line,
fit on one line and print as UTF-8; a valid one gives a plan that renders as text and JSON.

Inputs come three ways: plausible posts with hostile values (dates at datetime's edges, huge
numbers, control and bidi characters, deep nesting, wrong types, unknown keys), raw bytes and
text, and the bundled posts with random damage. A few examples also go through the real CLI
in a subprocess: exit 0 or 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from bot.content.loader import INTERNAL_ERROR, validate
from bot.content.report import FORMATS, render_problems
from bot.errors import Problem
from bot.schedule.plan import plan
from bot.schedule.render import plan_to_json, plan_to_text

ROOT = Path(__file__).resolve().parents[2]
FUZZ = "content/posts/fuzz.yaml"
NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)  # the example's posts fall in the next 40 days
FUZZ_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # no .hypothesis/ folder in the checkout; failures print their example
)
# Anything that would garble a terminal if printed as is (rendered problems must escape it).
_GARBLING = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def assert_clear_outcome(repo: Path) -> None:
    """Validate ``repo`` and plan it: clear problems, or a valid plan; nothing raised."""
    content, problems = validate(repo)
    errors = [p for p in problems if p.severity == "error"]
    for problem in problems:
        assert_clear(problem)
    for fmt in FORMATS:
        rendered = render_problems(problems, fmt)
        rendered.encode("utf-8")  # print() would raise on a lone surrogate
        assert not _GARBLING.search(rendered), rendered
    if content is None:
        assert errors, "invalid without an error"
        event("invalid")
        return
    assert not errors
    event("valid")
    result = plan(content, NOW, 40)
    plan_to_text(result, content).encode("utf-8")
    json.dumps(plan_to_json(result, content), ensure_ascii=False, allow_nan=False)


def assert_clear(problem: Problem) -> None:
    assert INTERNAL_ERROR not in problem.message, problem  # the safety net must never be needed
    assert problem.path.startswith("content/posts/"), problem
    assert problem.line >= 1 and problem.column >= 0, problem
    assert problem.message.strip() and "\n" not in problem.message, problem
    assert "Traceback" not in problem.message
    assert len(problem.message) < 2000, problem  # a value is quoted short, never in full


def write_post(repo: Path, body: bytes) -> None:
    (repo / FUZZ).write_bytes(body)


# --- YAML built from a tree, so that hostile values land where a post's keys expect them ----


@dataclass(frozen=True)
class Leaf:
    """A scalar as it is typed: ``raw`` (plain), ``quoted`` (double quotes) or ``block`` (|)."""

    style: str
    text: str


Node = Leaf | list[Any] | dict[Any, Any]


def yaml_quoted(text: str) -> str:
    """``text`` in double quotes, escaping what YAML requires (and lone surrogates, which
    libyaml refuses: they stay a hostile input)."""
    out = ['"']
    for ch in text:
        cp = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif cp < 0x20 or 0x7F <= cp <= 0x9F or 0xD800 <= cp <= 0xDFFF or cp in (0xFEFF, 0xFFFE):
            out.append(f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}")
        elif cp == 0xFFFF:
            out.append("\\uffff")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def emit(node: Node, indent: int = 0) -> str:
    """``node`` in block style; the result ends with a line break."""
    pad = " " * indent
    if isinstance(node, Leaf):
        return pad + scalar(node, indent) + "\n"
    if isinstance(node, dict):
        if not node:
            return pad + "{}\n"
        lines = []
        for key, value in node.items():
            head = f"{pad}{scalar(key, indent) if isinstance(key, Leaf) else key}:"
            lines.append(head + child(value, indent))
        return "".join(lines)
    if not node:
        return pad + "[]\n"
    return "".join(f"{pad}-{child(item, indent)}" for item in node)


def child(value: Node, indent: int) -> str:
    if isinstance(value, Leaf):
        return " " + scalar(value, indent + 2) + "\n"
    if not value:
        return " " + ("{}" if isinstance(value, dict) else "[]") + "\n"
    return "\n" + emit(value, indent + 2)


def scalar(leaf: Leaf, indent: int) -> str:
    if leaf.style == "quoted":
        return yaml_quoted(leaf.text)
    if leaf.style == "block":
        pad = " " * (indent + 2)
        body = "".join(f"\n{pad}{line}" for line in leaf.text.split("\n"))
        return "|-" + body
    return leaf.text


def raw(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[Leaf]:
    return strategy.map(lambda t: Leaf("raw", t))


def quoted(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[Leaf]:
    return strategy.map(lambda t: Leaf("quoted", t))


SPECIAL_CHARS = st.sampled_from(
    [
        "\x00",
        "\x1b",
        "\r",
        "\x7f",
        "\x85",
        "\x9b",
        "\u202e",
        "\u202a",
        "\u2066",
        "\u2069",
        "\u200b",
        "\u200f",
        "\u061c",
        "\ufeff",
        "\ufffe",
        "\u3164",
        "\u2800",
        "\U0001f1eb\U0001f1f7",
        "\U0001f468\u200d\U0001f469",
        "é",
        "\t",
        "\n",
        " #",
        ": ",
        "'",
        '"',
        "\\",
        "https://www.diplomatie.gouv.fr/",
    ]
)
TEXTS = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(SPECIAL_CHARS, st.text(max_size=8)), max_size=12).map("".join),
    st.integers(1, 400).map(lambda n: "é" * n),
    st.just("Bonjour #COP31 https://www.diplomatie.gouv.fr/fr/"),
)
DIGITS = st.one_of(
    st.integers().map(str),
    st.integers(1, 6000).map(lambda n: "9" * n),
    st.integers(1, 6000).map(lambda n: "0x" + "f" * n),
    st.sampled_from(["1e999", "-1e999", ".inf", "-.inf", ".nan", "0o777", "-0", "+12", "1_000"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` seven times in eight, ``bad`` otherwise: a post has many values, so this keeps
    a fair share of posts valid (and planned) while every value is often hostile."""
    return st.integers(0, 7).flatmap(lambda i: bad if i == 7 else good)  # 0, the simplest: good


GOOD_TEXTS = st.one_of(
    st.text(
        alphabet=st.characters(categories=("L", "N", "P", "Zs", "So")), min_size=1, max_size=120
    ),
    st.just("Bonjour #COP31 https://www.diplomatie.gouv.fr/fr/"),
    st.just("\u0644\u0642\u0627\u0621 \u200f#COP31\u200f \u2068Quai d'Orsay\u2069"),
)


@st.composite
def good_dates(draw: st.DrawFn) -> str:
    day = draw(st.integers(20, 30))
    hour, minute = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    offset = draw(st.sampled_from(["", "", "+01:00", "Z", "-05:00"]))
    return f"2026-11-{day:02d} {hour:02d}:{minute:02d}{offset}"


@st.composite
def dates(draw: st.DrawFn) -> str:
    year = draw(st.sampled_from([0, 1, 2, 1969, 1970, 2026, 2999, 3000, 9998, 9999]))
    month = draw(st.integers(0, 13))
    day = draw(st.integers(0, 32))
    hour = draw(st.integers(0, 25))
    minute = draw(st.integers(0, 61))
    sep = draw(st.sampled_from([" ", "T"]))
    offset = draw(
        st.sampled_from(
            ["", "Z", "+00:00", "-05:00", "+14:00", "-12:00", "+23:59", "+99:99", "-0530"]
        )
    )
    return f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}{offset}"


GOOD_LANGS = st.sampled_from(["fr", "en", "ar", "es"])
LANGS = mostly(GOOD_LANGS, st.sampled_from(["de", "FR", "fr-FR", "xx", "", "zh", "1"]))
ZONES = st.sampled_from(
    [
        "Europe/Paris",
        "America/New_York",
        "Pacific/Kiritimati",
        "Etc/GMT+12",
        "Asia/Beirut",
        "Europe/Paris",
        "Asia/Beirut",
        "Nope/Zone",
        "UTC",
        "../etc/passwd",
        "zone.tab",
        "Europe",
        "a" * 300,
    ]
)
MEDIA_PATHS = mostly(
    st.just("media/drapeau.png"),
    st.sampled_from(
        [
            "media/drapeau.png",
            "media/absent.png",
            "../../etc/passwd",
            "/etc/passwd",
            "media/a\x00b.png",
            "",
            "media",
            "content/media/drapeau.png",
            "glossary.yaml",
            "media/../../schedules/accounts.yaml",
            "posts/fuzz.yaml",
            "C:\\photo.jpg",
        ]
    )
    | st.integers(1, 3000).map(lambda n: "a/" * n + "b.png")
    | st.text(max_size=30),
)
HOSTILE_SCALARS: st.SearchStrategy[Leaf] = st.one_of(
    quoted(TEXTS),
    raw(DIGITS),
    raw(dates()),
    quoted(dates()),
    raw(st.sampled_from(["true", "no", "~", "null", "", "on", "2026-11-24", "10:30", "!!int 3"])),
    raw(st.text(alphabet=st.characters(codec="utf-8"), max_size=20)),
    TEXTS.filter(lambda t: "\r" not in t).map(lambda t: Leaf("block", t)),
)


def values_for(key: str) -> st.SearchStrategy[Node]:
    """Values for a post key: mostly plausible ones; else hostile scalars or wrong types."""
    plausible: dict[str, st.SearchStrategy[Node]] = {
        "lang": raw(GOOD_LANGS),
        "text": st.one_of(quoted(GOOD_TEXTS), GOOD_TEXTS.map(lambda t: Leaf("block", t))),
        "id": raw(st.sampled_from(["fuzz-1", "bilan-cop31", "a/b", "x.y_z"])),
        "publish_at": st.one_of(raw(good_dates()), quoted(good_dates())),
        "slot": raw(st.sampled_from(["morning", "evening", "morning", "mornin"])),
        "timezone": raw(ZONES),
        "translations": st.dictionaries(LANGS, quoted(GOOD_TEXTS), max_size=4),
        "machine_translated": st.dictionaries(LANGS, quoted(TEXTS), max_size=2),
        "languages": st.lists(raw(LANGS), min_size=1, max_size=4, unique_by=lambda leaf: leaf.text),
        "media": st.lists(media_items(), max_size=5),
        "thread": st.lists(parts(), max_size=4),
        "review": raw(st.sampled_from(["required", "none", "yes"])),
        "overflow": raw(st.sampled_from(["hold", "thread", "split"])),
    }
    return mostly(plausible.get(key, HOSTILE_SCALARS), st.one_of(HOSTILE_SCALARS, nodes()))


def nodes() -> st.SearchStrategy[Node]:
    """Any tree: lists and blocks of hostile scalars, nested a little or very deep."""
    tree: st.SearchStrategy[Node] = st.recursive(
        HOSTILE_SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(
                raw(st.sampled_from(["a", "text", "file", "1", "x y"])), inner, max_size=3
            ),
        ),
        max_leaves=8,
    )
    deep = st.integers(20, 40).map(lambda n: _nest(n))
    return st.one_of(tree, deep)


def _nest(depth: int) -> Node:
    node: Node = Leaf("raw", "x")
    for i in range(depth):
        node = [node] if i % 2 else {"k": node}
    return node


@st.composite
def media_items(draw: st.DrawFn) -> Node:
    item: dict[str, Node] = {"file": draw(mostly(quoted(MEDIA_PATHS), HOSTILE_SCALARS))}
    if draw(st.booleans()):
        good_alt = quoted(GOOD_TEXTS) | st.dictionaries(GOOD_LANGS, quoted(GOOD_TEXTS), max_size=3)
        hostile_alt = quoted(TEXTS) | st.dictionaries(LANGS, quoted(TEXTS), max_size=3) | nodes()
        item["alt"] = draw(mostly(good_alt, hostile_alt))
    return item


@st.composite
def parts(draw: st.DrawFn) -> Node:
    part: dict[str, Node] = {"text": draw(mostly(quoted(GOOD_TEXTS), HOSTILE_SCALARS))}
    for key in draw(st.sets(st.sampled_from(["translations", "media", "machine_translated"]))):
        part[key] = draw(values_for(key))
    return part


POST_KEYS = [
    "id",
    "publish_at",
    "slot",
    "timezone",
    "translations",
    "machine_translated",
    "languages",
    "media",
    "thread",
    "review",
    "overflow",
]
JUNK_KEYS = ["publsh_at", "Text", "42", "token", "text ", "x" * 300]


@st.composite
def posts(draw: st.DrawFn) -> str:
    """A post-shaped file: lang and text (usually), some other keys, hostile values."""
    post: dict[str, Node] = {}
    for key in ("lang", "text"):
        if draw(st.integers(0, 19)) < 19:
            post[key] = draw(values_for(key))
    for key in draw(st.lists(st.sampled_from(POST_KEYS), max_size=6, unique=True)):
        post[key] = draw(values_for(key))
    if draw(st.integers(0, 7)) == 7:
        post[draw(st.sampled_from(JUNK_KEYS))] = draw(HOSTILE_SCALARS | nodes())
    return emit(post)


EXAMPLE_POSTS = sorted((ROOT / "content/posts").rglob("*.yaml"))


@st.composite
def damaged_examples(draw: st.DrawFn) -> bytes:
    """A bundled post with a few random edits: bytes inserted, cut or a line repeated."""
    body = bytearray(draw(st.sampled_from(EXAMPLE_POSTS)).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["insert", "text", "cut", "repeat"]))
        if action == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "text":
            body[at:at] = draw(st.one_of(SPECIAL_CHARS, DIGITS.map(lambda d: d[:200]))).encode(
                "utf-8", "surrogatepass"
            )
        elif action == "cut":
            del body[at : at + draw(st.integers(1, 40))]
        else:
            line_start = body.rfind(b"\n", 0, at) + 1
            line_end = body.find(b"\n", at)
            line_end = len(body) if line_end < 0 else line_end + 1
            body[line_end:line_end] = body[line_start:line_end]
    return bytes(body)


@settings(FUZZ_SETTINGS, max_examples=400)
@given(body=posts())
@example(body="lang: fr\ntext: Bonjour\npublish_at: 0001-01-01 00:00\n")
@example(body="lang: fr\ntext: Bonjour\npublish_at: 9999-12-31T23:00-05:00\n")
@example(body="lang: fr\ntext: Bonjour\nx: " + "9" * 5000 + "\n")
@example(body='lang: fr\ntext: Bonjour\nmedia:\n  - file: "media/a\\0.png"\n')
@example(body='lang: fr\ntext: "\\u202eBonjour"\n')
@example(body='lang: fr\ntext: Bonjour\ntimezone: "\\x0a"\n')  # once a message with a newline
def test_fuzzed_posts_end_in_clear_problems_or_a_valid_plan(example_repo: Path, body: str) -> None:
    """Plausible posts with hostile values: located problems, or a plan, never an exception."""
    write_post(example_repo, body.encode("utf-8", "surrogatepass"))
    assert_clear_outcome(example_repo)


@settings(FUZZ_SETTINGS, max_examples=250)
@given(
    body=st.one_of(
        st.binary(max_size=600),
        st.text(max_size=600).map(lambda t: t.encode("utf-8", "surrogatepass")),
        damaged_examples(),
    )
)
def test_fuzzed_bytes_end_in_clear_problems_or_a_valid_plan(
    example_repo: Path, body: bytes
) -> None:
    """Raw bytes, raw text and damaged real posts: the same property."""
    write_post(example_repo, body)
    assert_clear_outcome(example_repo)


def test_the_property_can_fail(example_repo: Path) -> None:
    """The checker itself is not blind: a problem without a line is caught."""
    with pytest.raises(AssertionError):
        assert_clear(Problem(FUZZ, 0, 0, "somewhere"))
    with pytest.raises(AssertionError):
        assert_clear(Problem(FUZZ, 1, 1, f"{INTERNAL_ERROR} (ValueError: x)"))


def run_cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DIPLOBOT_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args, "--root", str(repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@settings(FUZZ_SETTINGS, max_examples=4)
@given(
    body=st.one_of(posts().map(lambda t: t.encode("utf-8", "surrogatepass")), damaged_examples())
)
@example(body=b"lang: fr\ntext: Bonjour\npublish_at: 9999-12-31T23:00-05:00\n")
def test_fuzzed_posts_through_the_real_cli_never_print_a_traceback(
    example_repo: Path, body: bytes
) -> None:
    """`python -m bot validate` and `plan` in a real process: exit 0 or 1, no traceback."""
    write_post(example_repo, body)
    validated = run_cli(example_repo, "validate")
    assert validated.returncode in (0, 1), validated.stderr
    assert "Traceback" not in validated.stderr
    planned = run_cli(example_repo, "plan", "--from", "2026-11-20 08:00")
    assert planned.returncode == validated.returncode, planned.stderr
    assert "Traceback" not in planned.stderr
