"""A post's keys, types, languages, schedule and texts: each mistake located and explained."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

POST = "content/posts/bad.yaml"
Check = Callable[..., Any]  # the `check` fixture of conftest.py


def assert_one_error(check: Check, body: str, where: str, *words: str) -> None:
    """`body` as the post makes validate exit 1 with one error at `where` saying `words`."""
    result = check({POST: body})
    assert result.code == 1, result.out
    found_where, text = result.only_error()
    assert found_where == where, text
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        pytest.param(
            "lang: fr\npubish_at: 2026-11-24 09:00\ntext: Bonjour\n",
            f"{POST}:2:1",
            ["unknown key 'pubish_at'", "did you mean 'publish_at'?"],
            id="post-key",
        ),
        pytest.param(
            "lang: fr\ntext: Bonjour\nmedia:\n  - fiel: media/drapeau.png\n",
            f"{POST}:4:5",
            ["unknown key 'fiel'", "did you mean 'file'?"],
            id="media-key",
        ),
        pytest.param(
            "lang: fr\ntext: Un\nthread:\n  - text: Deux\n    translation: {en: Two}\n",
            f"{POST}:5:5",
            ["unknown key 'translation'", "did you mean 'translations'?"],
            id="thread-key",
        ),
    ],
)
def test_unknown_key_suggests_the_closest_key(
    check: Check, body: str, where: str, words: list[str]
) -> None:
    """A misspelt key is reported where it is typed, with the key that was probably meant."""
    result = check({POST: body})
    assert result.code == 1
    # (A misspelt `file` also leaves `file` missing: that second error is fine.)
    assert any(
        found == where and all(word in text for word in words) for found, text in result.errors
    ), result.out


def test_unknown_key_far_from_any_lists_the_valid_keys(check: Check) -> None:
    """With no close match, the hint lists the keys that are allowed there."""
    assert_one_error(
        check,
        "lang: fr\ntext: Un\nthread:\n  - text: Deux\n    zzz: 1\n",
        f"{POST}:5:5",
        "unknown key 'zzz'",
        "valid keys:",
        "translations",
    )


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        pytest.param(
            "lang: fr\ntext: 5\n",
            f"{POST}:2:7",
            ["'text' must be text, not the number 5"],
            id="text",
        ),
        pytest.param(
            "lang: fr\ntext: Bonjour\nlanguages: fr\n",
            f"{POST}:3:12",
            ["'languages' must be a list, not 'fr'", "[fr, en]"],
            id="languages",
        ),
        pytest.param(
            "lang: fr\ntext: Bonjour\nmedia: media/drapeau.png\n",
            f"{POST}:3:8",
            ["'media' must be a list", "- file: media/photo.jpg"],
            id="media",
        ),
        pytest.param(
            "lang: fr\ntext: Bonjour\ntranslations: [en, Hello]\n",
            f"{POST}:3:15",
            ["'translations' must be a block of 'key: value' lines, not a list"],
            id="translations",
        ),
        pytest.param(
            "lang: fr\ntext: Bonjour\nreview: maybe\n",
            f"{POST}:3:9",
            ["'review' must be one of", "'required'", "not 'maybe'"],
            id="review",
        ),
        pytest.param(
            "lang: fr\ntext: Bonjour\npublish_at: tomorrow\n",
            f"{POST}:3:13",
            ["'publish_at' has an invalid value 'tomorrow'", "YYYY-MM-DD HH:MM"],
            id="publish_at",
        ),
    ],
)
def test_wrong_type_says_what_was_expected(
    check: Check, body: str, where: str, words: list[str]
) -> None:
    """A value of the wrong kind is reported at the value, naming the kind expected."""
    assert_one_error(check, body, where, *words)


def test_missing_text_is_named(check: Check) -> None:
    """A post without `text:` names the missing key."""
    assert_one_error(check, "lang: fr\n", f"{POST}:1:1", "missing required key 'text'")


def test_duplicate_ids_name_both_files(check: Check) -> None:
    """Two files with one id: the error sits on the second file's id and names the first file."""
    result = check(
        {
            "content/posts/a.yaml": "id: same\nlang: fr\ntext: Un\n",
            "content/posts/b.yaml": "# second\nid: same\nlang: fr\ntext: Deux\n",
        }
    )
    assert result.code == 1
    where, text = result.only_error()
    assert where == "content/posts/b.yaml:2:1"
    assert "id 'same' is already used by content/posts/a.yaml" in text


def test_explicit_id_clashing_with_a_file_name_id_is_a_duplicate(check: Check) -> None:
    """A file's default id (its path) counts: `id: queue/team-france-export` clashes with it."""
    result = check({"content/posts/zz.yaml": "id: queue/team-france-export\nlang: fr\ntext: Un\n"})
    assert result.code == 1
    assert result.only_error() == (
        "content/posts/zz.yaml:1:1",
        "id 'queue/team-france-export' is already used by "
        "content/posts/queue/team-france-export.yaml "
        "(every post needs its own id; change one of them)",
    )


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        pytest.param(
            "lang: xx\ntext: Bonjour\n",
            f"{POST}:1:7",
            ["unknown language 'xx'", "two-letter ISO 639-1 code"],
            id="xx",
        ),
        pytest.param(
            "lang: fr-FR\ntext: Bonjour\n",
            f"{POST}:1:7",
            ["no account publishes in 'fr-FR'; accounts publish in 'fr'", "use 'fr'"],
            id="region-tag-without-account",
        ),
        pytest.param(
            "lang: fr\ntext: Bonjour\nlanguages: [fr, EN]\n",
            f"{POST}:3:17",
            ["unknown language 'EN'", "use 'en'"],
            id="in-languages",
        ),
        pytest.param(
            "lang: fr\ntext: Bonjour\ntranslations:\n  en_GB: Hello\n",
            f"{POST}:4:3",
            ["unknown language 'en_GB'", "use 'en-GB'"],
            id="translation-key",
        ),
    ],
)
def test_unknown_language_is_refused_with_a_fix(
    check: Check, body: str, where: str, words: list[str]
) -> None:
    """A tag that is not BCP 47 over ISO 639-1 is refused with its canonical spelling; a
    regional tag no account publishes in points at the account's language."""
    assert_one_error(check, body, where, *words)


def test_translation_for_a_language_no_account_publishes_in(check: Check) -> None:
    """`translations: {de: ...}` with no German account: says so, and lists the languages."""
    assert_one_error(
        check,
        "lang: fr\ntext: Bonjour\ntranslations:\n  de: Hallo\n",
        f"{POST}:4:3",
        "translation into 'de', but no account publishes in 'de'",
        "accounts publish in: ar, en, es, fr",
    )


def test_publish_at_and_slot_together_are_refused(check: Check) -> None:
    """A post has a fixed time or a slot, never both: the hint says which to keep for what."""
    assert_one_error(
        check,
        "lang: fr\ntext: Bonjour\npublish_at: 2026-11-24 09:00\nslot: morning\n",
        f"{POST}:4:1",
        "both publish_at and slot are set",
        "keep one",
    )


@pytest.mark.parametrize(
    ("slot", "hint"),
    [("mornin", "did you mean 'morning'?"), ("midnight", "slots: evening, morning")],
)
def test_unknown_slot_names_the_slots_there_are(check: Check, slot: str, hint: str) -> None:
    """An unknown slot suggests the closest name, or lists the slots of slots.yaml."""
    assert_one_error(
        check,
        f"lang: fr\ntext: Bonjour\nslot: {slot}\n",
        f"{POST}:3:7",
        f"unknown slot '{slot}'",
        hint,
    )


def test_publish_at_in_the_spring_forward_gap_does_not_exist(check: Check) -> None:
    """02:30 on 2026-03-29 never happens in Paris: the error says so, the hint offers offsets."""
    assert_one_error(
        check,
        "lang: fr\ntext: Bonjour\npublish_at: 2026-03-29 02:30\n",
        f"{POST}:3:13",
        "2026-03-29 02:30 does not exist in Europe/Paris",
        "clocks jump from 02:00 to 03:00",
        "2026-03-29 02:30+01:00 means 03:30",
        "2026-03-29 02:30+02:00 means 01:30",
    )


def test_publish_at_in_the_fall_back_hour_is_ambiguous(check: Check) -> None:
    """02:30 on 2026-10-25 happens twice in Paris: the hint gives both offsets to choose from."""
    assert_one_error(
        check,
        "lang: fr\ntext: Bonjour\npublish_at: 2026-10-25 02:30\n",
        f"{POST}:3:13",
        "2026-10-25 02:30 occurs twice in Europe/Paris",
        "clocks go back 1 hour",
        "2026-10-25 02:30+02:00 for the first",
        "2026-10-25 02:30+01:00 for the second",
    )


def test_publish_at_with_the_offset_the_hint_gives_is_valid(check: Check) -> None:
    """Following the ambiguity hint (adding the offset) makes the post valid."""
    result = check({POST: "lang: fr\ntext: Bonjour\npublish_at: 2026-10-25 02:30+01:00\n"})
    assert result.code == 0, result.out


def test_publish_at_on_a_day_that_does_not_exist(check: Check) -> None:
    """February 30th is refused with the reason."""
    assert_one_error(
        check,
        "lang: fr\ntext: Bonjour\npublish_at: 2026-02-30 09:00\n",
        f"{POST}:3:13",
        "'2026-02-30 09:00' is not a valid date and time",
        "day is out of range for month",
    )


@pytest.mark.parametrize(
    ("body", "where"),
    [
        pytest.param("lang: fr\ntext: '   '\n", f"{POST}:2:7", id="blank-text"),
        pytest.param("lang: fr\ntext: ''\n", f"{POST}:2:7", id="empty-string"),
        pytest.param("lang: fr\ntext: Bonjour\ntranslations:\n  en: ''\n", f"{POST}:4:7", id="tr"),
        pytest.param("lang: fr\ntext: Un\nthread:\n  - text: ' '\n", f"{POST}:4:11", id="thread"),
    ],
)
def test_empty_text_is_refused(check: Check, body: str, where: str) -> None:
    """A text, translation or thread part with nothing in it is refused where it stands."""
    assert_one_error(check, body, where, "text is empty", "write the text")


def test_text_left_empty_after_the_key_must_be_text(check: Check) -> None:
    """`text:` with nothing after it is null in YAML: reported as empty, not as a crash."""
    assert_one_error(check, "lang: fr\ntext:\n", f"{POST}:2:6", "'text' must be text, not empty")


@pytest.mark.parametrize(
    ("body", "where", "count"),
    [
        pytest.param("lang: fr\ntext: " + "a" * 301 + "\n", f"{POST}:2:7", 301, id="text"),
        pytest.param(
            "lang: fr\ntext: Bonjour\ntranslations:\n  en: " + "b" * 290 + "\n",
            f"{POST}:4:7",
            290,
            id="translation",
        ),
        pytest.param(
            "lang: fr\ntext: Un\nthread:\n  - text: " + "c" * 281 + "\n",
            f"{POST}:4:11",
            281,
            id="thread-part",
        ),
        pytest.param("lang: fr\ntext: " + "日" * 141 + "\n", f"{POST}:2:7", 282, id="cjk-weighs-2"),
    ],
)
def test_human_text_over_280_weighted_characters_says_the_count(
    check: Check, body: str, where: str, count: int
) -> None:
    """A human-written variant over X's limit gives its weighted length and how much to cut."""
    assert_one_error(
        check,
        body,
        where,
        f"text is {count} characters long as X counts them; the limit is 280",
        f"shorten it by {count - 280}",
    )


def test_text_of_exactly_280_weighted_characters_is_valid(check: Check) -> None:
    """The limit itself is allowed: a URL counts 23 whatever its length."""
    url = "https://www.diplomatie.gouv.fr/" + "x" * 100
    text = "a" * (280 - 23 - 1) + " " + url
    result = check({POST: f"lang: fr\ntext: {text}\n"})
    assert result.code == 0, result.out


@pytest.mark.parametrize(
    ("alt", "where"),
    [
        pytest.param("alt: " + "d" * 1001, f"{POST}:5:10", id="single"),
        pytest.param("alt:\n      fr: " + "d" * 1001, f"{POST}:6:11", id="per-language"),
    ],
)
def test_alt_text_over_1000_characters_is_refused(check: Check, alt: str, where: str) -> None:
    """Alt text longer than X allows is refused with its length."""
    body = f"lang: fr\ntext: Bonjour\nmedia:\n  - file: media/drapeau.png\n    {alt}\n"
    assert_one_error(check, body, where, "alt text is 1001 characters; X allows 1000")


def test_alt_text_of_1000_characters_is_valid(check: Check) -> None:
    """1,000 characters of alt text is exactly the limit."""
    body = "lang: fr\ntext: Bonjour\nmedia:\n  - file: media/drapeau.png\n    alt: " + "d" * 1000
    result = check({POST: body + "\n"})
    assert result.code == 0, result.out


def test_hashtag_after_a_space_in_unquoted_text_is_not_silently_dropped(check) -> None:  # type: ignore[no-untyped-def]
    """`text: Ouverture de la #COP31` would publish 'Ouverture de la': refuse it, say why."""
    result = check({"content/posts/h.yaml": "lang: fr\ntext: Ouverture de la #COP31 à Antalya\n"})
    assert result.code == 1
    assert "content/posts/h.yaml:2:7: the text stops before '#COP31 à Antalya'" in result.out
    assert "put the whole text in quotes" in result.out


def test_text_starting_with_a_hashtag_explains_the_comment(check) -> None:  # type: ignore[no-untyped-def]
    """`text: #COP31 ...` is an empty value in YAML; the hint says the '#' began a comment."""
    result = check({"content/posts/h.yaml": "lang: fr\ntext: #COP31 ouverture\n"})
    assert result.code == 1
    assert "starts a YAML comment, so the value is empty" in result.out


def test_quoted_hashtags_are_fine(check) -> None:  # type: ignore[no-untyped-def]
    """Quoted or folded texts keep their hashtags: no error."""
    body = 'lang: fr\ntext: "Ouverture de la #COP31"\ntranslations:\n  en: >-\n    Opening #COP31\n'
    assert check({"content/posts/h.yaml": body}).code == 0
