"""`diplobot validate` as CI and editors run it: every error at once, three formats, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Check = Callable[..., Any]  # the `check` fixture of conftest.py
ROOT = Path(__file__).resolve().parents[2]

THREE_BAD_FILES = {
    "content/posts/a.yaml": "lang: xx\ntext: Un\n",
    "content/posts/b.yaml": "lang: fr\ntext: '  '\n",
    "content/posts/c.yaml": "lang: fr\ntext: [Trois\n",
}
EXPECTED = [
    ("content/posts/a.yaml", 1, 7, "unknown language 'xx'"),
    ("content/posts/b.yaml", 2, 7, "text is empty"),
    ("content/posts/c.yaml", 3, 1, "YAML syntax error: did not find expected ',' or ']'"),
]


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS...` in a real process, importing this checkout's package."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DIPLOBOT_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_valid_example_exits_0(check: Check) -> None:
    """The bundled example validates: exit 0, 'valid', nothing on stderr."""
    result = check()
    assert result.code == 0
    assert result.out.splitlines()[-1] == "valid"
    assert result.err == ""


def test_every_bad_file_is_reported_in_one_run(check: Check) -> None:
    """Three broken posts give three located errors and a summary; validation never stops early."""
    result = check(THREE_BAD_FILES)
    assert result.code == 1
    assert [where for where, _ in result.errors] == [
        f"{path}:{line}:{col}" for path, line, col, _ in EXPECTED
    ]
    for (_, text), (*_, words) in zip(result.errors, EXPECTED, strict=True):
        assert words in text
    assert result.out.splitlines()[-1].startswith("3 error(s), 0 warning(s)")


def test_json_format_lists_every_problem_with_its_location(check: Check) -> None:
    """`--format json` is one JSON document with path, line, column and message per problem."""
    result = check(THREE_BAD_FILES, "--format", "json")
    assert result.code == 1
    report = json.loads(result.out)
    assert (report["valid"], report["errors"], report["warnings"]) == (False, 3, 0)
    got = [(p["path"], p["line"], p["column"], p["message"]) for p in report["problems"]]
    assert [g[:3] for g in got] == [e[:3] for e in EXPECTED]
    for (*_, message), (*_, words) in zip(got, EXPECTED, strict=True):
        assert words in message
    assert all(p["severity"] == "error" and p["hint"] for p in report["problems"])


def test_json_format_of_the_valid_example(check: Check) -> None:
    """A valid repository in JSON says so, with no problems."""
    result = check(None, "--format", "json")
    assert result.code == 0
    assert json.loads(result.out) == {"valid": True, "errors": 0, "warnings": 0, "problems": []}


def test_github_format_prints_one_annotation_per_problem(check: Check) -> None:
    """`--format github` prints workflow-command lines GitHub turns into inline annotations."""
    result = check(THREE_BAD_FILES, "--format", "github")
    assert result.code == 1
    lines = result.out.splitlines()
    assert len(lines) == 3
    for line, (path, row, col, words) in zip(lines, EXPECTED, strict=True):
        assert line.startswith(f"::error file={path},line={row},col={col}::")
        assert words in line


def test_github_format_escapes_what_would_break_the_command(check: Check) -> None:
    """A ',' in the path and a '%' in the message are escaped as workflow commands require."""
    result = check(
        {"content/posts/a,b.yaml": "id: ab\nlang: fr\ntext: Un\nslot: 50%\n"}, "--format", "github"
    )
    assert result.code == 1
    assert result.out.splitlines() == [
        "::error file=content/posts/a%2Cb.yaml,line=4,col=7::unknown slot '50%25' "
        "(slots: evening, morning)"
    ]


@pytest.mark.parametrize(
    "argv", [["--format", "xml"], ["--bogus"]], ids=["bad-format", "bad-option"]
)
def test_usage_error_exits_2(
    run_cli: Callable[..., Any], example_repo: Path, argv: list[str]
) -> None:
    """A wrong option is a usage error (exit 2) naming what is wrong, not 'invalid content'."""
    result = run_cli("validate", "--root", str(example_repo), *argv)
    assert result.code == 2
    assert "usage: diplobot" in result.err
    assert argv[-1] in result.err


def test_real_process_exit_codes_0_1_2(example_repo: Path, tmp_path: Path) -> None:
    """End to end through `python -m bot`: 0 valid, 1 invalid (errors on stdout), 2 usage."""
    valid = run_module("validate", "--root", str(example_repo), cwd=tmp_path)
    assert (valid.returncode, valid.stdout.strip()) == (0, "valid"), valid.stderr

    (example_repo / "content/posts/bad.yaml").write_text(
        "lang: fr\npubish_at: 2026-11-24 09:00\ntext: Bonjour\n", encoding="utf-8"
    )
    invalid = run_module("validate", "--root", str(example_repo), cwd=tmp_path)
    assert invalid.returncode == 1, invalid.stderr
    assert invalid.stdout.startswith(
        "content/posts/bad.yaml:2:1: unknown key 'pubish_at' (did you mean 'publish_at'?)\n"
    )

    usage = run_module("validate", "--format", "xml", cwd=tmp_path)
    assert usage.returncode == 2
    assert "invalid choice: 'xml'" in usage.stderr


def test_real_process_reads_the_current_directory_by_default(example_repo: Path) -> None:
    """Run from inside the repository, `diplobot validate` needs no --root."""
    (example_repo / "content/posts/bad.yaml").write_text("lang: xx\ntext: Un\n", encoding="utf-8")
    result = run_module("validate", "--format", "json", cwd=example_repo)
    assert result.returncode == 1, result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert [(p["path"], p["line"], p["column"]) for p in problems] == [
        ("content/posts/bad.yaml", 1, 7)
    ]


def test_a_root_that_does_not_exist_is_a_usage_error(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A mistyped --root exits 2 and names the path, instead of listing missing files."""
    from bot.cli import main

    assert main(["validate", "--root", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err
