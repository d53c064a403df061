"""Splitting an over-long translation into a numbered thread."""

from __future__ import annotations

import pytest

from bot.text import weighted_length
from bot.text.split import CannotSplit, split_thread

SENTENCE = (
    "Francia celebra el acuerdo alcanzado en Antalya sobre la adaptación y pide más ambición."
)


def test_short_text_is_not_split() -> None:
    """A text within the limit comes back alone, without numbering."""
    assert split_thread("Hola") == ["Hola"]


def test_long_text_splits_at_sentences_and_numbers_parts() -> None:
    """Each part fits, ends with i/n, and the sentences come back in order, whole."""
    text = " ".join([SENTENCE] * 5) + " https://www.diplomatie.gouv.fr/es/ #COP31 🌍"
    parts = split_thread(text)
    assert len(parts) > 1
    assert all(weighted_length(p) <= 280 for p in parts)
    assert [p.rsplit(" ", 1)[1] for p in parts] == [
        f"{i}/{len(parts)}" for i in range(1, len(parts) + 1)
    ]
    joined = " ".join(p.rsplit(" ", 1)[0] for p in parts)
    assert joined == text
    assert "https://www.diplomatie.gouv.fr/es/ #COP31 🌍" in parts[-1]


def test_protected_phrase_is_never_cut() -> None:
    """A glossary rendering with spaces stays in one part even when splitting by words."""
    phrase = "Ministerio de Europa y Asuntos Exteriores"
    text = ("palabra " * 60) + phrase + (" palabra" * 10)
    parts = split_thread(text, [phrase])
    assert any(phrase in p for p in parts)


def test_unsplittable_text_is_refused() -> None:
    """One 'word' longer than a post cannot be split: say so instead of cutting it."""
    with pytest.raises(CannotSplit):
        split_thread("x" * 400)


def test_joined_parts_lose_only_their_own_numbering() -> None:
    """A thread joined into one post drops each part's closing "i/n" when it is that part's
    place; any other number (a date, "24/7", a wrong count) stays."""
    from bot.text.split import join_parts

    assert join_parts(["Un. 1/3", "Deux 2/3", "  Trois. 3/3 "]) == "Un.\n\nDeux\n\nTrois."
    assert join_parts(["Ouvert 24/7", "Fin 2/2"]) == "Ouvert 24/7\n\nFin"
    assert join_parts(["Un 1/2", "Deux 2/3"]) == "Un\n\nDeux 2/3"
