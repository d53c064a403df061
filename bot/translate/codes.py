"""A BCP 47 tag (``bot.content.languages``) as each translation backend names the language.

Backends disagree on everything past the language: Google says ``zh-CN``/``zh-TW`` and ``iw``
for Hebrew, DeepL ``ZH-HANS``/``PT-BR`` for a target but only ``ZH``/``PT`` for a source,
LibreTranslate ``zh``/``zt``, Microsoft ``zh-Hans``/``pt-pt``, MyMemory a region everywhere
(``fr-FR``). Each adapter calls :func:`code` with its name; a tag a backend cannot express
falls back to its language (``es-419`` → ``es``), never to an error here (the backend says
whether it knows the language).
"""

from __future__ import annotations

from typing import Final, Literal

from bot.content.languages import chinese_script, primary, region

Role = Literal["source", "target"]

_GOOGLE_RENAMED: Final = {"he": "iw", "jv": "jw"}
_MYMEMORY_REGIONS: Final = {
    "fr": "fr-FR",
    "en": "en-GB",
    "es": "es-ES",
    "ar": "ar-SA",
    "pt": "pt-PT",
    "de": "de-DE",
    "it": "it-IT",
    "ru": "ru-RU",
    "ja": "ja-JP",
}
_DEEPL_DEFAULT_TARGETS: Final = {"en": "EN-GB", "pt": "PT-PT"}
_DEEPL_REGIONAL_TARGETS: Final = frozenset({"EN-GB", "EN-US", "PT-BR", "PT-PT"})


def code(backend: str, tag: str, role: Role = "target") -> str:
    """The code ``backend`` knows ``tag`` by, as a ``role`` language."""
    lang = primary(tag)
    if backend == "google":
        if lang == "zh":
            return "zh-TW" if chinese_script(tag) == "Hant" else "zh-CN"
        return _GOOGLE_RENAMED.get(lang, lang)
    if backend == "libre":
        if lang == "zh":
            return "zt" if chinese_script(tag) == "Hant" else "zh"
        return lang
    if backend == "microsoft":
        if lang == "zh":
            return "zh-Hant" if chinese_script(tag) == "Hant" else "zh-Hans"
        if lang == "pt":  # Microsoft's "pt" is Brazilian Portuguese
            return "pt" if region(tag) in (None, "BR") else "pt-pt"
        return lang
    if backend == "mymemory":
        if lang == "zh":
            return "zh-TW" if chinese_script(tag) == "Hant" else "zh-CN"
        found = region(tag)
        if found is not None and found.isalpha():
            return f"{lang}-{found}"
        return _MYMEMORY_REGIONS.get(lang, lang)
    if backend == "deepl":
        if role == "source":  # DeepL's source languages carry no variant
            return lang.upper()
        if lang == "zh":
            return "ZH-HANT" if chinese_script(tag) == "Hant" else "ZH-HANS"
        regional = f"{lang}-{region(tag) or ''}".upper()
        if regional in _DEEPL_REGIONAL_TARGETS:
            return regional
        return _DEEPL_DEFAULT_TARGETS.get(lang, lang.upper())
    return tag
