"""``diplobot preview`` from the command line: what it prints, and a repository with errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from preview.helpers import example_copy


def test_a_repository_with_errors_gets_a_page_of_its_problems_and_exit_1(
    tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    """No cards for invalid content: the site's index lists each problem with its file:line
    (an editor's value in the message drawn as text), the terminal the same, exit 1; pages of
    an earlier preview in the folder are removed."""
    root = example_copy(tmp_path / "repo")
    bad = root / "content/posts/test/casse.yaml"
    bad.write_text(
        'id: casse\nlang: fr\npublish_at: 2026-13-01 10:00\ntext: "<b>gras</b>"\n',
        encoding="utf-8",
    )
    out = tmp_path / "site"
    out.mkdir()
    (out / "post-old-123456.html").write_text("old", encoding="utf-8")
    result = run_cli("preview", "--root", str(root), "--out", str(out))
    assert result.code == 1
    assert "content/posts/test/casse.yaml:3" in result.err
    html = (out / "index.html").read_text(encoding="utf-8")
    assert 'data-problem="content/posts/test/casse.yaml:3"' in html
    assert "<b>" not in html
    assert not (out / "post-old-123456.html").exists()
    assert result.out.startswith("the content has errors: file://")


def test_preview_prints_what_it_wrote_and_where(
    tmp_path: Path, run_cli: Callable[..., Any], monkeypatch: Any
) -> None:
    """The summary line counts posts and cards, and says how many are not ready; the default
    folder is ROOT/.diplobot/preview."""
    monkeypatch.setenv("DIPLOBOT_TRANSLATOR", "libre")  # no URL: machine variants wait
    root = example_copy(tmp_path / "repo")
    result = run_cli(
        "preview",
        "--root",
        str(root),
        "--state",
        f"sqlite:///{tmp_path / 'state.sqlite'}",
        "--from",
        "2026-11-23 08:00",
    )
    assert result.code == 0, result.err
    assert "machine translations unavailable" in result.err
    assert result.out.strip().endswith((root / ".diplobot/preview/index.html").as_uri())
    summary = re.match(r"(\d+) post\(s\), (\d+) card\(s\) \((\d+) not ready, ", result.out)
    assert summary is not None, result.out
    posts, cards, waiting = map(int, summary.groups())
    assert posts == len(list(root.glob(".diplobot/preview/post-*.html")))
    assert cards > posts and 0 < waiting < cards  # the human texts are ready
