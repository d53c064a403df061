"""Content that used to raise (or hang) inside `diplobot validate` ends in a located error.

Each case here once printed a traceback, or never returned: year 1 or 9999 (OverflowError),
a 5,000-digit number (ValueError from Python's int-string limit), a NUL in a media path,
folders 3,000 deep (RecursionError in os.walk), a named pipe under content/posts (open() waits
for a writer forever). `plan`, `translate` and `post-now` load the same way and must say the
same, with exit 1 and no traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.content.files import MAX_DIR_DEPTH
from bot.content.loader import validate

ROOT = Path(__file__).resolve().parents[2]
POST = "content/posts/bad.yaml"
Check = Callable[..., Any]  # the `check` fixture of conftest.py


def run_module(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS...` in a real process; a hang fails the test after ``timeout``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DIPLOBOT_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("lines", "value"),
    [
        ("publish_at: 0001-01-01 00:00\n", "0001-01-01 00:00"),
        ("timezone: America/New_York\npublish_at: 9999-12-31 23:00\n", "9999-12-31 23:00"),
        ("publish_at: 9999-12-31T23:00-05:00\n", "9999-12-31T23:00-05:00"),
        ("publish_at: 0001-01-01T00:00+05:00\n", "0001-01-01T00:00+05:00"),
    ],
)
def test_publish_at_in_year_1_or_9999_is_an_error_not_an_overflow(
    check: Check, lines: str, value: str
) -> None:
    """Dates at datetime's edges (OverflowError once converted to UTC) are out of range."""
    result = check({POST: "lang: fr\ntext: Bonjour\n" + lines})
    assert result.code == 1, result.out + result.err
    line = 3 + lines.count("\n") - 1
    assert result.only_error() == (
        f"{POST}:{line}:13",
        f"publish_at '{value}' is out of range: diplobot schedules dates from 1970 to 2999 "
        "(check the year)",
    )


def test_blackout_in_year_9999_is_an_error_not_an_overflow(check: Check) -> None:
    """slots.yaml's dates go through the same parser and get the same range check."""
    slots = (
        "slots:\n"
        "  morning: {times: [09:30]}\n"
        "  evening: {times: [18:30]}\n"
        "blackouts:\n"
        "  - from: 9999-12-31 20:00\n"
        "    until: 9999-12-31 23:00\n"
        "    reason: test\n"
        "    timezone: America/New_York\n"
    )
    result = check({"schedules/slots.yaml": slots})
    assert result.code == 1
    assert [where for where, _ in result.errors] == [
        "schedules/slots.yaml:5:11",
        "schedules/slots.yaml:6:12",
    ]
    assert "out of range" in result.out


@pytest.mark.parametrize("value", ["2026-11-24 0\u0669:00", "2026-11-24 09:00+0\uff11:00"])
def test_digits_other_than_0_to_9_in_a_date_are_refused(check: Check, value: str) -> None:
    """int() reads Arabic-Indic and full-width digits; a date must be typed with 0-9."""
    result = check({POST: f'lang: fr\ntext: Bonjour\npublish_at: "{value}"\n'})
    assert result.code == 1
    assert result.only_error() == (
        f"{POST}:3:13",
        f"publish_at '{value}' is not a date and time (write it as YYYY-MM-DD HH:MM, "
        "e.g. 2026-11-24 09:00)",
    )


def test_an_infinite_price_is_an_error_not_an_infinite_cost(check: Check) -> None:
    """`.inf` in accounts.yaml's pricing made every cost in `plan` (and its JSON) infinite."""
    accounts = (
        "timezone: Europe/Paris\n"
        "pricing: {post: .inf}\n"
        "accounts:\n"
        "  francediplo: {lang: fr, handle: francediplo}\n"
        "  francediplo_EN: {lang: en, handle: francediplo_EN}\n"
        "  francediplo_AR: {lang: ar, handle: francediplo_AR}\n"
        "  francediplo_ES: {lang: es, handle: francediplo_ES}\n"
    )
    result = check({"schedules/accounts.yaml": accounts})
    assert result.code == 1
    assert result.only_error() == (
        "schedules/accounts.yaml:2:17",
        "'post': input should be a finite number",
    )


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ("publish_at: " + "9" * 5000, "3:13"),  # a value
        ("text2: " + "1" * 5000, "3:8"),  # a value under an unknown key
        ("languages: [" + "7" * 5000 + "]", "3:13"),  # inside a list
        ("x: !!int " + "9" * 5000, "3:4"),  # an explicit tag
        ("x: 0x" + "f" * 5000, "3:4"),  # hexadecimal: int() has no limit, str() of it has
        ("9" * 500 + ": key", "3:1"),  # a key (YAML limits keys to 1,024 characters)
    ],
)
def test_a_5000_digit_number_is_an_error_not_a_value_error(
    check: Check, line: str, where: str
) -> None:
    """Python refuses int('9' * 5000); the file says where the number is and to quote it."""
    result = check({POST: f"lang: fr\ntext: Bonjour\n{line}\n"})
    assert result.code == 1, result.out + result.err
    position, message = result.only_error()
    assert position == f"{POST}:{where}"
    assert message.startswith("this number is 500")
    assert "characters long; diplobot reads numbers of at most 100" in message
    assert "put it in quotes" in message


def test_a_5000_digit_text_in_quotes_is_text(check: Check) -> None:
    """The same digits in quotes are a (too long) text, measured like any other."""
    result = check({POST: f'lang: fr\ntext: "{"9" * 5000}"\n'})
    assert result.code == 1
    assert result.only_error() == (
        f"{POST}:2:7",
        "text is 5000 characters long as X counts them; the limit is 280; Mastodon 5000 "
        "(limit 500) (shorten it by 4720, or move the rest to 'thread:')",
    )


def test_a_nul_in_a_media_path_is_an_error_at_the_character(check: Check) -> None:
    """A NUL in a path made os.path.realpath raise ValueError; now it is located and named."""
    result = check({POST: 'lang: fr\ntext: Bonjour\nmedia:\n  - file: "media/dra\\0peau.png"\n'})
    assert result.code == 1, result.out + result.err
    assert result.only_error() == (
        f"{POST}:4:21",
        "media path contains the invisible character U+0000 NULL (delete the escape \\0 at "
        "column 21, or retype the path)",
    )


def test_a_3000_level_media_path_is_an_error(check: Check) -> None:
    """A path of 3,000 folders is refused by its length, before the file system sees it."""
    result = check({POST: "lang: fr\ntext: Bonjour\nmedia:\n  - file: " + "a/" * 3000 + "b.png\n"})
    assert result.code == 1
    assert result.only_error() == (
        f"{POST}:4:11",
        "media path is 6005 characters long; diplobot reads paths of at most 1024 (use a path "
        "relative to content/, like media/photo.jpg)",
    )


def make_deep(top: Path, depth: int, post: bytes) -> None:
    """``depth`` nested folders under ``top`` with a post at the bottom, made through
    directory descriptors (the full path is longer than the system allows)."""
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        out = os.open("p.yaml", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, post)
        os.close(out)
    finally:
        os.close(fd)


def remove_deep(top: Path) -> None:
    """Undo :func:`make_deep` without recursion (pytest's cleanup would overflow on it)."""
    fds = [os.open(top, os.O_RDONLY)]
    while True:
        try:
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        except FileNotFoundError:
            break
    while fds:
        fd = fds.pop()
        for name in os.listdir(fd):
            if name == "d":
                os.rmdir(name, dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)
        os.close(fd)


@pytest.fixture
def deep_posts(example_repo: Path) -> Iterator[Path]:
    top = example_repo / "content/posts/deep"
    top.mkdir()
    make_deep(top, 3000, b"lang: fr\ntext: Bonjour\n")
    yield example_repo
    remove_deep(top)


def test_folders_3000_deep_under_posts_are_an_error_not_a_recursion_error(
    deep_posts: Path, run_cli: Callable[..., Any]
) -> None:
    """os.walk recursed once per level; the walk is iterative and stops where it gets absurd."""
    result = run_cli("validate", "--root", str(deep_posts))
    assert result.code == 1, result.out + result.err
    deepest = "content/posts/deep" + "/d" * MAX_DIR_DEPTH
    assert result.out.splitlines()[0] == (
        f"{deepest}: folders are nested more than {MAX_DIR_DEPTH} levels deep here; nothing "
        "inside is read (move the files up a few folders)"
    )
    assert "Traceback" not in result.err


@pytest.fixture
def odd_files(example_repo: Path) -> Iterator[Path]:
    """A named pipe, a socket and a link to a device under content/posts."""
    posts = example_repo / "content/posts"
    os.mkfifo(posts / "pipe.yaml")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(posts / "sock.yaml"))
    os.symlink("/dev/zero", posts / "zero.yaml")
    yield example_repo
    sock.close()


ODD_FILE_ERRORS = [
    "content/posts/pipe.yaml: cannot read this file: it is a named pipe (FIFO), not a file "
    "(replace it with an ordinary text file, or delete it)",
    "content/posts/sock.yaml: cannot read this file: it is a socket, not a file "
    "(replace it with an ordinary text file, or delete it)",
    "content/posts/zero.yaml: cannot read this file: it is a device, not a file "
    "(replace it with an ordinary text file, or delete it)",
]


def test_a_fifo_socket_or_device_under_posts_is_an_error_not_a_hang(odd_files: Path) -> None:
    """Reading a FIFO waited forever for a writer; each odd file is now named, in a real run."""
    result = run_module("validate", "--root", str(odd_files), timeout=30)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[:3] == ODD_FILE_ERRORS
    assert result.stderr == ""


def test_a_fifo_for_schedules_glossary_or_media_is_an_error_not_a_hang(
    example_repo: Path,
) -> None:
    """slots.yaml, glossary.yaml and an image replaced by named pipes: three errors, no wait."""
    for rel in ("schedules/slots.yaml", "content/glossary.yaml", "content/media/drapeau.png"):
        os.unlink(example_repo / rel)
        os.mkfifo(example_repo / rel)
    result = run_module("validate", "--root", str(example_repo), timeout=30)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    for rel in ("schedules/slots.yaml", "content/glossary.yaml"):
        assert f"{rel}: cannot read this file: it is a named pipe (FIFO), not a file" in out
    assert "media 'media/drapeau.png' cannot be used: it is a named pipe (FIFO)" in out
    assert result.stderr == ""


def test_cache_of_the_service_does_not_hang_on_a_fifo_in_content(example_repo: Path) -> None:
    """The service's cache fingerprints content/ (glossary, media): a pipe there must not block."""
    from bot.content.loader import LoadCache

    os.unlink(example_repo / "content/glossary.yaml")
    os.mkfifo(example_repo / "content/glossary.yaml")
    os.mkfifo(example_repo / "content/media/pipe.png")
    content, problems = validate(example_repo, LoadCache())
    assert content is None
    assert [p.path for p in problems if p.severity == "error"] == ["content/glossary.yaml"]


HOSTILE_POSTS = {
    "content/posts/year1.yaml": "lang: fr\ntext: Bonjour\npublish_at: 0001-01-01 00:00\n",
    "content/posts/digits.yaml": "lang: fr\ntext: Bonjour\nx: " + "9" * 5000 + "\n",
    "content/posts/nul.yaml": 'lang: fr\ntext: Bonjour\nmedia:\n  - file: "media/a\\0.png"\n',
    "content/posts/path.yaml": "lang: fr\ntext: Bonjour\nmedia:\n  - file: " + "a/" * 3000 + "\n",
}


@pytest.mark.parametrize(
    "command",
    [
        ["validate"],
        ["plan", "--from", "2026-11-20 00:00"],
        ["translate"],
        ["post-now", "year1", "--dry-run"],
    ],
    ids=["validate", "plan", "translate", "post-now"],
)
def test_every_command_that_loads_reports_hostile_content_without_a_traceback(
    odd_files: Path, command: list[str]
) -> None:
    """The same errors from each command (validate on stdout, the others on stderr), exit 1."""
    for rel, body in HOSTILE_POSTS.items():
        (odd_files / rel).write_text(body, encoding="utf-8")
    result = run_module(command[0], "--root", str(odd_files), *command[1:], timeout=30)
    assert result.returncode == 1, result.stderr
    shown = result.stdout if command[0] == "validate" else result.stderr
    assert "Traceback" not in result.stderr
    lines = shown.splitlines()
    assert lines[-1].startswith("7 error(s), 0 warning(s)")
    assert lines[:-1] == [
        "content/posts/digits.yaml:3:4: this number is 5000 characters long; diplobot reads "
        'numbers of at most 100 (if it is meant as text, put it in quotes, e.g. text: "123...")',
        "content/posts/nul.yaml:4:19: media path contains the invisible character U+0000 NULL "
        "(delete the escape \\0 at column 19, or retype the path)",
        "content/posts/path.yaml:4:11: media path is 6000 characters long; diplobot reads paths "
        "of at most 1024 (use a path relative to content/, like media/photo.jpg)",
        *ODD_FILE_ERRORS[:2],
        "content/posts/year1.yaml:3:13: publish_at '0001-01-01 00:00' is out of range: "
        "diplobot schedules dates from 1970 to 2999 (check the year)",
        ODD_FILE_ERRORS[2],
    ]


def test_a_defect_met_while_checking_a_file_becomes_a_problem_about_that_file(
    example_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate() never raises: an unexpected exception names the file and asks for a report."""
    import dataclasses

    import bot.content.loader as loader
    from bot.platforms import PLATFORMS

    def broken(*_args: object, **_kwargs: object) -> int:
        raise RuntimeError("boom")

    x = PLATFORMS["x"]  # the rare corner: a defect in how X's text length is counted
    broken_x = dataclasses.replace(x, limits=dataclasses.replace(x.limits, count=broken))
    monkeypatch.setitem(PLATFORMS, "x", broken_x)
    content, problems = validate(example_repo)
    assert content is None
    errors = [p for p in problems if p.severity == "error"]
    assert errors and all(p.message.startswith(loader.INTERNAL_ERROR) for p in errors)
    assert errors[0].path.startswith("content/posts/")
    assert "(RuntimeError: boom)" in errors[0].message
