"""Review workflow and the length policy: what waits, what is held, what gets threaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.translate import FakeEngine, LibreServer
from translate.conftest import KEY

from bot.cli import main

ROOT = Path(__file__).resolve().parents[2]


class VerboseEngine(FakeEngine):
    """Translations that run long, as Spanish often does: each sentence gains a clause."""

    def translate(self, text: str, source: str | None, target: str) -> str:
        out = super().translate(text, source, target)
        return out.replace(".", ", en estrecha coordinación con todos nuestros socios.")


@pytest.fixture
def libre(monkeypatch: pytest.MonkeyPatch) -> Iterator[LibreServer]:
    with LibreServer(api_key=KEY, engine=VerboseEngine()) as server:
        monkeypatch.setenv("DIPLOBOT_TRANSLATOR", "libre")
        monkeypatch.setenv("DIPLOBOT_TRANSLATOR_URL", server.url)
        monkeypatch.setenv("DIPLOBOT_TRANSLATOR_KEY", KEY)
        yield server


def test_review_required_keeps_machine_text_waiting(
    repo: Path, libre: LibreServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A post with review: required shows its machine variants as awaiting approval."""
    assert main(["translate", "--root", str(repo), "brouillon-communique"]) == 0
    out = capsys.readouterr().out
    assert "brouillon-communique [en]: machine, review" in out
    assert "brouillon-communique [fr]: human, ready" in out


def test_write_puts_translations_in_the_file_and_keeps_comments(
    repo: Path, libre: LibreServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """--write adds translations with a machine mark; comments and other keys stay as typed."""
    path = repo / "content/posts/2026/12/brouillon-communique.yaml"
    before = path.read_text(encoding="utf-8")
    assert main(["translate", "--root", str(repo), "--write", "brouillon-communique"]) == 0
    after = path.read_text(encoding="utf-8")
    for line in before.splitlines():
        assert line in after  # nothing of the editor's was changed or lost
    assert "machine_translated:" in after and "  es: libre:" in after
    assert main(["validate", "--root", str(repo)]) == 0
    capsys.readouterr()
    assert main(["translate", "--root", str(repo), "brouillon-communique"]) == 0
    out = capsys.readouterr().out
    assert "brouillon-communique [es]: file, review" in out


def test_editing_a_written_translation_approves_it(
    repo: Path, libre: LibreServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Changing the machine text (or deleting its mark) makes it human and ready."""
    path = repo / "content/posts/2026/12/brouillon-communique.yaml"
    assert main(["translate", "--root", str(repo), "--write", "brouillon-communique"]) == 0
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    es = next(
        i for i, line in enumerate(lines) if line.startswith("  es: ") and "libre:" not in line
    )
    lines[es] = '  es: "Comunicado: Francia condena con la mayor firmeza el ataque de hoy."'
    ar_mark = next(i for i, line in enumerate(lines) if line.startswith("  ar: libre:"))
    del lines[ar_mark]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["translate", "--root", str(repo), "brouillon-communique"]) == 0
    out = capsys.readouterr().out
    assert "brouillon-communique [es]: human, ready" in out
    assert "brouillon-communique [ar]: human, ready" in out
    assert "brouillon-communique [en]: file, review" in out


def _long_post(repo: Path, overflow: str) -> None:
    sentence = "La France salue l'accord et appelle les partenaires à agir avec le ministre."
    text = " ".join([sentence] * 3)
    (repo / "content/posts/long.yaml").write_text(
        f'lang: fr\nlanguages: [fr, es]\noverflow: {overflow}\ntext: "{text}"\n',
        encoding="utf-8",
    )


def test_overflowing_translation_is_held_by_default(
    repo: Path, libre: LibreServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A translation over 280 characters is held with the count and what to do; exit 1."""
    _long_post(repo, "hold")
    assert main(["translate", "--root", str(repo), "long"]) == 1
    out = capsys.readouterr().out
    assert "long [es]: machine, held — held: the es translation is" in out
    assert "set 'overflow: thread'" in out


def test_overflow_thread_splits_into_numbered_parts(
    repo: Path, libre: LibreServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """With overflow: thread the long translation becomes parts ending 1/2, 2/2."""
    _long_post(repo, "thread")
    assert main(["translate", "--root", str(repo), "long"]) == 0
    out = capsys.readouterr().out
    assert "long [es]: machine, ready" in out
    assert " 1/2\n" in out and " 2/2\n" in out
