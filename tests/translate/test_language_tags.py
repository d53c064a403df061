"""BCP 47 tags (zh-Hans, zh-Hant, pt-BR) reach each backend as the code it knows, through its
real client library and its local server."""

from __future__ import annotations

import pytest
from servers.translate import Call, _first
from translate.conftest import Backend

from bot.content.languages import canonical, chinese_script, is_language, primary
from bot.translate.codes import code

EXPECTED = {
    "google": {"zh-Hans": "zh-CN", "zh-Hant": "zh-TW", "pt-BR": "pt", "fr": "fr"},
    "libre": {"zh-Hans": "zh", "zh-Hant": "zt", "pt-BR": "pt", "fr": "fr"},
    "deepl": {"zh-Hans": "ZH-HANS", "zh-Hant": "ZH-HANT", "pt-BR": "PT-BR", "fr": "FR"},
    "microsoft": {"zh-Hans": "zh-hans", "zh-Hant": "zh-hant", "pt-BR": "pt", "fr": "fr"},
    "mymemory": {"zh-Hans": "zh-CN", "zh-Hant": "zh-TW", "pt-BR": "pt-BR", "fr": "fr-FR"},
}
"""What each server receives for a target tag (Microsoft's server reads codes lowercased)."""


def _target(backend: str, call: Call) -> str:
    """The target language code a backend's request carried."""
    if backend == "mymemory":
        return (_first(call.params, "langpair") or "").partition("|")[2]
    key = {"google": "tl", "libre": "target", "deepl": "target_lang", "microsoft": "to"}[backend]
    return _first(call.params, key) or ""


@pytest.mark.parametrize("tag", ["zh-Hans", "zh-Hant", "pt-BR"])
def test_a_bcp47_target_reaches_the_server_as_the_backends_code(backend: Backend, tag: str) -> None:
    """Each backend sends the code its API documents for the tag, and gets an answer."""
    answer = backend.translator.translate("Bonjour", "fr", tag)
    assert answer.strip()
    (call,) = backend.server.calls
    sent = _target(backend.name, call)
    expected = EXPECTED[backend.name][tag]
    assert (sent.lower() if backend.name == "microsoft" else sent) == expected


def test_deepl_sources_carry_no_variant() -> None:
    """DeepL's source languages are bare (ZH, PT): a variant is for targets only."""
    assert code("deepl", "zh-Hant", "source") == "ZH"
    assert code("deepl", "pt-BR", "source") == "PT"
    assert code("deepl", "en", "target") == "EN-GB"
    assert code("deepl", "en-US", "target") == "EN-US"


def test_region_implies_the_chinese_script() -> None:
    """zh-TW and zh-HK write traditional characters; zh and zh-CN simplified."""
    assert [chinese_script(t) for t in ("zh", "zh-CN", "zh-TW", "zh-HK", "zh-Hant-CN")] == [
        "Hans",
        "Hans",
        "Hant",
        "Hant",
        "Hant",
    ]
    assert code("google", "zh-HK") == "zh-TW"


def test_tags_are_accepted_in_canonical_case_only() -> None:
    """zh-Hans, pt-BR, es-419 are tags; their other spellings have a canonical form; an
    unknown language has none."""
    assert all(is_language(t) for t in ("fr", "zh-Hans", "zh-Hant", "pt-BR", "es-419"))
    assert canonical("ZH-hans") == "zh-Hans"
    assert canonical("pt_br") == "pt-BR"
    assert canonical("xx") is None
    assert canonical("fr-FR-x-private") is None
    assert not is_language("pt-br")
    assert primary("zh-Hant") == "zh"
