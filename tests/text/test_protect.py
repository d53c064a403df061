"""Entity protection: what machine translation must not touch comes back exactly."""

from __future__ import annotations

import pytest

from bot.text.protect import EntityMismatch, GlossaryTerm, entities, protect, restore

GLOSSARY = (
    GlossaryTerm("Quai d'Orsay", {}),
    GlossaryTerm(
        "ministère de l'Europe et des Affaires étrangères",
        {
            "en": "Ministry for Europe and Foreign Affairs",
            "es": "Ministerio de Europa y Asuntos Exteriores",
        },
    ),
)
POST = (
    "🌍 #COP31 : la France salue l’accord. Le ministère de l'Europe et des Affaires étrangères "
    "et le Quai d’Orsay remercient @UNFCCC 🇫🇷🇧🇷 👩🏽‍🔬 $EUR https://www.diplomatie.gouv.fr/fr/cop31#bilan"
)


def test_every_entity_is_masked_and_nothing_else() -> None:
    """URLs, mentions, hashtags, cashtags, emoji runs and glossary terms become placeholders."""
    p = protect(POST, "en", GLOSSARY)
    assert p.replacements == (
        "🌍",
        "#COP31",
        "Ministry for Europe and Foreign Affairs",
        "Quai d’Orsay",
        "@UNFCCC",
        "🇫🇷🇧🇷",
        "👩🏽‍🔬",
        "$EUR",
        "https://www.diplomatie.gouv.fr/fr/cop31#bilan",
    )
    assert "la France salue l’accord" in p.masked
    assert "#" not in p.masked and "@" not in p.masked and "http" not in p.masked


def test_restore_puts_entities_back_and_renders_glossary_in_target() -> None:
    """Placeholders come back as the source's entities and the glossary's fixed rendering."""
    p = protect(POST, "es", GLOSSARY)
    answer = p.masked.replace("la France salue l’accord", "Francia celebra el acuerdo")
    out = restore(answer, p)
    assert "Ministerio de Europa y Asuntos Exteriores" in out
    assert out.startswith("🌍 #COP31 : Francia celebra el acuerdo")
    assert entities(out) == entities(POST)


def test_a_term_without_translation_stays_as_written() -> None:
    """A glossary term with no rendering for the target is kept verbatim (apostrophe too)."""
    p = protect("Réunion au Quai d’Orsay.", "ar", GLOSSARY)
    assert restore(p.masked.replace("Réunion au", "اجتماع في"), p) == "اجتماع في Quai d’Orsay."


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda s: s.replace("⟦1⟧", ""), "lost '#COP31'"),
        (lambda s: s.replace("⟦1⟧", "⟦1⟧ ⟦1⟧"), "repeated '#COP31'"),
        (lambda s: s + " ⟦99⟧", "invented a placeholder"),
        (lambda s: s.replace("⟦1⟧", "⟦1"), "lost '#COP31'"),
        (lambda s: s + " #nouveau", "added '#nouveau'"),
        (lambda s: s + " https://example.com", "added 'https://example.com'"),
        (lambda s: s + " @someone", "added '@someone'"),
    ],
)
def test_damaged_answers_are_refused_with_a_reason(damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    """Lost, repeated, invented or added entities raise EntityMismatch naming the entity."""
    p = protect(POST, "en", GLOSSARY)
    with pytest.raises(EntityMismatch) as info:
        restore(damage(p.masked), p)
    assert reason in info.value.reason


def test_spaces_inside_placeholders_are_tolerated() -> None:
    """Engines that write '⟦ 1 ⟧' still restore correctly."""
    p = protect("Vive #Paris", "en")
    assert restore(p.masked.replace("⟦0⟧", "⟦ 0 ⟧").replace("Vive", "Long live"), p) == (
        "Long live #Paris"
    )


def test_hashtag_inside_url_is_part_of_the_url() -> None:
    """A URL fragment '#x' is not a separate hashtag: one placeholder for the whole URL."""
    p = protect("Voir https://ex.fr/page#section maintenant", "en")
    assert p.replacements == ("https://ex.fr/page#section",)


def test_arabic_hashtag_is_protected() -> None:
    """Hashtags in non-Latin scripts are entities too."""
    assert protect("دعم #لبنان اليوم", "fr").replacements == ("#لبنان",)
