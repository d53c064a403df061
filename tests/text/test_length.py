"""Weighted length: twitter-text's conformance suite, our own cases, and parity with the library.

The parity tests hold ``measure`` to ``parse_tweet`` and the URL and emoji spans of
``bot.text._entities`` to the library's own extraction, on texts glued at random from fragments.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from twitter_text import extract_emojis_with_indices, extract_urls_with_indices, parse_tweet
from twitter_text.config import config
from twitter_text.regexp.emoji import emoji_list
from twitter_text.regexp.invalid_chars import invalid_chars
from twitter_text.regexp.valid_cctld import valid_cctld
from twitter_text.regexp.valid_gtld import valid_gtld

from bot.text import MAX_WEIGHTED_LENGTH, Measure, _x_tables, measure, normalize, weighted_length
from bot.text._entities import emoji_spans, url_spans
from bot.text.length import _HEAVY, INVALID_CHARACTERS, LIGHT_RANGES, weight_bound

DATA = Path(__file__).resolve().parents[1] / "data" / "twitter-text"
SUITE: dict[str, list[dict[str, Any]]] = yaml.safe_load(
    (DATA / "validate.yml").read_text(encoding="utf-8")
)["tests"]

#: Cases of WeightedTweetsCounterTest whose expectations hold only without emoji discounting.
#: twitter-text's own runners check that section with configuration v2 and the
#: WithDiscountedEmoji section with v3; X counts with v3, and so does ``measure``. The same
#: texts pass with v3 expectations in WeightedTweetsWithDiscountedEmojiCounterTest.
#: ``test_v2_only_cases_hold_without_emoji_discounting`` checks that this is the only difference.
V2_ONLY = {
    "Count a mix of single byte single word, and double word unicode characters",
    "Count unicode emoji chars outside the basic multilingual plane with skin tone modifiers",
}
V2_REASON = (
    "expects configuration v2 (each code point of an emoji counted); X and measure use v3, "
    "where an emoji counts 2: see WeightedTweetsWithDiscountedEmojiCounterTest"
)


def cases(section: str) -> list[Any]:
    """Return the section's cases as pytest params with the description as id."""
    return [
        pytest.param(
            case["text"],
            case["expected"],
            id=case["description"],
            marks=[pytest.mark.xfail(strict=True, reason=V2_REASON)]
            if section == "WeightedTweetsCounterTest" and case["description"] in V2_ONLY
            else [],
        )
        for case in SUITE[section]
    ]


def as_expected(result: Measure) -> dict[str, Any]:
    """Return ``result`` in the shape of a conformance case's ``expected``."""
    return {
        "weightedLength": result.weighted,
        "valid": result.valid,
        "permillage": result.permillage,
        "displayRangeStart": result.display_range[0],
        "displayRangeEnd": result.display_range[1],
        "validRangeStart": result.valid_range[0],
        "validRangeEnd": result.valid_range[1],
    }


@pytest.mark.parametrize(("text", "expected"), cases("WeightedTweetsCounterTest"))
def test_conformance_weighted_tweets(text: str, expected: dict[str, Any]) -> None:
    """measure agrees with twitter-text's WeightedTweetsCounterTest."""
    assert as_expected(measure(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"), cases("WeightedTweetsWithDiscountedEmojiCounterTest")
)
def test_conformance_discounted_emoji(text: str, expected: dict[str, Any]) -> None:
    """measure agrees with twitter-text's WeightedTweetsWithDiscountedEmojiCounterTest (v3)."""
    assert as_expected(measure(text)) == expected


@pytest.mark.parametrize(("text", "expected"), cases("UnicodeDirectionalMarkerCounterTest"))
def test_conformance_directional_markers(text: str, expected: dict[str, Any]) -> None:
    """measure agrees with twitter-text's UnicodeDirectionalMarkerCounterTest."""
    assert as_expected(measure(text)) == expected


def test_conformance_suite_is_complete() -> None:
    """The vendored suite holds the 44 cases we run, and the v2-only cases are among them."""
    sections = ("WeightedTweetsCounterTest", "WeightedTweetsWithDiscountedEmojiCounterTest")
    assert [len(SUITE[name]) for name in sections] == [20, 22]
    assert len(SUITE["UnicodeDirectionalMarkerCounterTest"]) == 2
    assert V2_ONLY.issubset(case["description"] for case in SUITE["WeightedTweetsCounterTest"])


def test_v2_only_cases_hold_without_emoji_discounting() -> None:
    """The xfailed cases pass when parse_tweet stops discounting emoji, and only then."""
    without_discount = {**config["version3"], "emoji_parsing_enabled": False}
    for case in SUITE["WeightedTweetsCounterTest"]:
        if case["description"] in V2_ONLY:
            assert parse_tweet(case["text"], without_discount).asdict() == case["expected"]
            assert parse_tweet(case["text"], config["version3"]).asdict() != case["expected"]


def test_crlf_counts_like_lf() -> None:
    """A Windows line ending weighs 1, like a Unix one, and so does a lone carriage return."""
    assert weighted_length("a\r\nb") == weighted_length("a\nb") == weighted_length("a\rb") == 3


def test_combining_accent_counts_once() -> None:
    """An e followed by a combining acute accent is composed (NFC) and weighs 1."""
    assert weighted_length("e\u0301") == weighted_length("\u00e9") == 1


def test_normalize_composes_and_unifies_line_endings() -> None:
    """normalize turns CRLF and CR into LF and composes characters."""
    assert normalize("Cafe\u0301\r\nOK\r") == "Caf\u00e9\nOK\n"


def test_280_characters_are_valid_and_281_are_not() -> None:
    """A post may weigh exactly the limit, not one more."""
    assert measure("a" * MAX_WEIGHTED_LENGTH).valid
    too_long = measure("a" * (MAX_WEIGHTED_LENGTH + 1))
    assert (too_long.weighted, too_long.valid) == (281, False)
    assert too_long.valid_range == (0, 279)


def test_url_counts_23_whatever_its_length() -> None:
    """Any URL weighs 23, short or long, with or without a protocol."""
    assert weighted_length("https://www.diplomatie.gouv.fr/fr/politique-etrangere/") == 23
    assert weighted_length("Voir diplomatie.gouv.fr") == 5 + 23


def test_emoji_and_cjk_count_two() -> None:
    """An emoji, even a multi-code-point one, and a CJK character each weigh 2."""
    assert weighted_length("\U0001f1eb\U0001f1f7") == 2  # flag: two code points
    assert weighted_length("\U0001f468\u200d\U0001f469\u200d\U0001f467") == 2
    assert weighted_length("外交") == 4


def test_empty_text_is_invalid() -> None:
    """X refuses an empty post."""
    assert measure("") == Measure(0, 280, False, 0, (0, -1), (0, 0))


def test_invalid_character_makes_text_invalid() -> None:
    """A byte-order mark or a noncharacter makes the post invalid at any position."""
    result = measure("Bonjour\ufeff")
    assert (result.weighted, result.valid) == (9, False)


def test_measure_is_frozen() -> None:
    """A Measure cannot be changed once made."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        measure("a").weighted = 0  # type: ignore[misc]


def test_light_ranges_are_config_v3() -> None:
    """The weight-1 ranges are those of twitter-text's configuration v3."""
    vendored = json.loads((DATA / "config-v3.json").read_text(encoding="utf-8"))
    for ranges in (vendored["ranges"], config["version3"]["ranges"]):
        assert [(r["start"], r["end"]) for r in ranges] == list(LIGHT_RANGES)
        assert {r["weight"] for r in ranges} == {100}
    assert vendored["defaultWeight"] == config["version3"]["default_weight"] == 200
    assert vendored["transformedURLLength"] == config["version3"]["transformed_url_length"] == 23
    assert vendored["maxWeightedTweetLength"] == MAX_WEIGHTED_LENGTH


# Pieces the parity test glues together at random: every kind of character the counting
# treats differently, URLs in their odd shapes, emoji sequences, and things that look like them.
FRAGMENTS = [
    *["le", "ministre", "étrangères", "Ωμέγα", "привет", "مرحبا", "नमस्ते", "中国", "日本語"],
    *[" ", " ", " ", "\n", "\r\n", "\r", "\t", "\u00a0", "\u202f", "\u3000", "\u2028"],
    *[".", ".", ",", ":", "/", "-", "_", "@", "#", "$", "(", ")", "?", "…", "’", "：", "。"],
    *["2024", "7", "#", "*", "x" * 40, "é" * 25, "中" * 15],
    "https://www.diplomatie.gouv.fr/fr/actualites",
    "http://test.co",
    "HTTPS://EXAMPLE.COM/Path?q=1&r=2",
    "example.com",
    "www.twitter.com/jack",
    "t.co/abc123",
    "https://t.co/abcdefghij?x=1",
    "foobar.پاکستان/",
    "http://あいうえお.com",
    "xn--p1ai.xn--p1ai",
    "a.b.c.fr",
    "diplomatie.gouv.fr:8080/x?y=z&w=1",
    "https://example.com/(foo)bar",
    "ab.cd",
    "U.E.",
    "v1.2",
    ".fr",
    "élysée.fr",
    *["http://", "https://", "www.", ".com", "xn--", "пример.рф", ".рф", "例子.中国", ".ελ"],
    *["ſ", "K", "İ", "ı", "ß", "\u00ad", "\u3002", "\uff0e"],
    *["\U0001f637", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"],
    *["\U0001f64b\U0001f3fd", "1\u20e3", "1\ufe0f\u20e3", "#\ufe0f\u20e3", "*\u20e3"],
    *["\U0001f1eb\U0001f1f7", "\u00a9", "\u00ae", "\u00a9\ufe0f", "\u203c", "\u263a"],
    "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
    *["\u200d", "\ufe0f", "\U0001f3fd"],
    *["e\u0301", "\u0301", "A\u030a", "\u1100\u1161", "\u05e9\u05bc\u05c1"],
    *["\ufffe", "\ufeff", "\uffff"],
    *["\u202a", "\u202c", "\u2066", "\u2069", "\u200e", "\u061c"],
    *["\U0001d400", "\U00020000", "\u2000", "\u200b", "\u2030", "\u2032", "\u2038"],
]


def random_text(rng: random.Random, pieces: int) -> str:
    """Glue ``pieces`` random fragments, mostly separated by a space."""
    return "".join(rng.choice(FRAGMENTS) + rng.choice(["", " ", " ", " "]) for _ in range(pieces))


def reference(text: str) -> Measure:
    """Measure ``text`` with twitter-text's parse_tweet, configuration v3."""
    result = parse_tweet(text, config["version3"])
    return Measure(
        weighted=result.weightedLength,
        limit=MAX_WEIGHTED_LENGTH,
        valid=result.valid,
        permillage=result.permillage,
        valid_range=(result.validRangeStart, result.validRangeEnd),
        display_range=(result.displayRangeStart, result.displayRangeEnd),
    )


@pytest.mark.parametrize("seed", range(8))
def test_measure_equals_parse_tweet(seed: int) -> None:
    """measure returns exactly what parse_tweet (v3) does, on texts short, long and odd."""
    rng = random.Random(seed)
    for _ in range(150):
        text = random_text(rng, rng.choice([1, 2, 3, 5, 10, 20, 40, 80]))
        assert measure(text) == reference(text), text


def test_weighted_length_is_measures_weight() -> None:
    """weighted_length is measure(...).weighted."""
    rng = random.Random(99)
    for _ in range(200):
        text = random_text(rng, rng.randint(1, 30))
        assert weighted_length(text) == measure(text).weighted


def test_normalize_matches_parse_tweets_own_normalization() -> None:
    """Counting a normalized text gives parse_tweet's count of the raw text."""
    rng = random.Random(7)
    for _ in range(200):
        text = random_text(rng, rng.randint(1, 15))
        assert normalize(normalize(text)) == normalize(text)
        assert reference(normalize(text)).weighted == reference(text).weighted, text


EVERY_CHARACTER = "".join(map(chr, range(0x110000)))


def library_emoji_spans(text: str) -> dict[int, int]:
    """Return twitter-text's emoji entities as start → length."""
    return {e["indices"][0]: len(e["emoji"]) for e in extract_emojis_with_indices(text)}


def library_url_spans(text: str) -> dict[int, int]:
    """Return twitter-text's URL entities as start → length of the url, later winning."""
    return {e["indices"][0]: len(e["url"]) for e in extract_urls_with_indices(text)}


@pytest.mark.parametrize("separator", ["", " ", "a", "1"])
def test_every_library_emoji_is_found(separator: str) -> None:
    """Each emoji of the library's list is found where the library finds it, glued or not."""
    text = separator.join(entry.emoji for entry in emoji_list)
    assert emoji_spans(text) == library_emoji_spans(text)


@pytest.mark.parametrize("seed", range(4))
def test_emoji_spans_match_library(seed: int) -> None:
    """On random texts, emoji spans are the library's."""
    rng = random.Random(seed)
    for _ in range(150):
        text = normalize(random_text(rng, rng.randint(1, 30)))
        assert emoji_spans(text) == library_emoji_spans(text), text


@pytest.mark.parametrize("seed", range(4))
def test_url_spans_match_library(seed: int) -> None:
    """On random texts, URL spans are the library's."""
    rng = random.Random(seed)
    for _ in range(150):
        text = normalize(random_text(rng, rng.randint(1, 30)))
        assert url_spans(text) == library_url_spans(text), text


def test_spans_match_library_on_every_suite_text() -> None:
    """On every text of validate.yml, all sections, URL and emoji spans are the library's."""
    texts = [case["text"] for cases in SUITE.values() for case in cases]
    assert len(texts) == 97
    for text in map(normalize, texts):
        assert url_spans(text) == library_url_spans(text), text
        assert emoji_spans(text) == library_emoji_spans(text), text


@pytest.mark.parametrize(
    "text",
    [
        "Voir https://www.diplomatie.gouv.fr/fr/ et diplomatie.gouv.fr.",
        "详情请见：https://cn.ambafrance.org/数据。http://t.co/abc谢谢",
        "abc.https://example.com",
        "x.co/a.fr/b:https://ab.cd",
        "@user.fr #tag.com $cash.com -dash.com _u.com /s.com",
        "HTTP://EXAMPLE.FR ſ.fr K.com",
        "\u202ahttps://example.com\u202c",
    ],
)
def test_url_spans_match_library_on_cut_points(text: str) -> None:
    """Where we cut the text before a URL, the library's URLs are unchanged."""
    assert url_spans(text) == library_url_spans(text)


def test_every_tld_starts_with_a_letter() -> None:
    """A URL's TLD starts with a letter, as url_spans assumes when it looks for one."""
    for pattern in (valid_gtld.pattern, valid_cctld.pattern):
        tlds = re.fullmatch(r"\(\?:\(\?:(.*)\)\(\?=.*\)\)", pattern)
        assert tlds is not None
        assert all(tld[0].isalpha() for tld in tlds[1].split("|"))


def test_heavy_characters_are_those_outside_light_ranges() -> None:
    """A code point weighs 2 exactly when configuration v3's ranges leave it out."""
    light = {code for start, end in LIGHT_RANGES for code in range(start, end + 1)}
    heavy = {ord(c) for c in _HEAVY.findall(EVERY_CHARACTER)}
    assert heavy == set(range(0x110000)) - light


def test_invalid_characters_are_the_librarys() -> None:
    """INVALID_CHARACTERS are exactly the characters twitter-text rejects."""
    assert set(invalid_chars.findall(EVERY_CHARACTER)) == INVALID_CHARACTERS


@pytest.mark.parametrize("seed", range(4))
def test_weight_bound_is_never_below_the_weight(seed: int) -> None:
    """weight_bound, which lets validate skip exact counting, never says less than
    weighted_length: on random texts, dense in URLs, emoji and heavy characters, and on every
    text of the suite."""
    rng = random.Random(seed)
    texts = [random_text(rng, rng.choice([1, 3, 10, 30, 80])) for _ in range(300)]
    texts += [case["text"] for cases in SUITE.values() for case in cases]
    texts += [entry.emoji for entry in emoji_list]
    for text in texts:
        assert weight_bound(text) >= weighted_length(text), text


def test_weight_bound_clears_an_ordinary_post() -> None:
    """The bound is tight enough to clear a typical 200-character post with a link."""
    text = (
        "La France salue l'accord conclu aujourd'hui (42). Entretien du ministre avec son "
        "homologue. #Diplomatie https://www.diplomatie.gouv.fr/fr/article-42"
    )
    assert weighted_length(text) <= weight_bound(text) <= MAX_WEIGHTED_LENGTH


def test_no_emoji_is_one_ascii_character() -> None:
    """weight_bound assumes an emoji of one character is not ASCII (it weighs 2, an ASCII
    character's byte only 1): true of the library's table."""
    assert not any(e.emoji.isascii() and len(e.emoji) == 1 for e in emoji_list)
    assert not any(c.isascii() for c in _x_tables.EMOJI_SINGLES)


def test_fragments_cover_every_entity_kind() -> None:
    """The random texts can hold URLs and emoji, so the parity tests test something."""
    text = " ".join(FRAGMENTS)
    assert library_url_spans(text) and library_emoji_spans(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    cases("WeightedTweetsWithDiscountedEmojiCounterTest")
    + cases("UnicodeDirectionalMarkerCounterTest"),
)
def test_count_command_reports_the_conformance_lengths(
    text: str, expected: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """`diplobot count TEXT` prints the suite's weighted length and exits 0 only if valid."""
    from bot.cli import main

    code = main(["count", "--format", "json", text])
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "weighted_length": expected["weightedLength"],
        "limit": 280,
        "valid": expected["valid"],
    }
    assert code == (0 if expected["valid"] else 1)


def test_count_command_text_output() -> None:
    """The human output names the count, the limit and the verdict."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "bot", "count", "Voir https://x.com 🇫🇷"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "31/280 (fits)\n")  # 5 + URL 23 + 1 + flag 2
