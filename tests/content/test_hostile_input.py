"""Hostile files are refused in under 1 s and under 100 MB, measured in a separate process."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_SECONDS = 1.0
MAX_GROWTH_MB = 100.0

# The child times only the validate() call and reports the growth of its own peak RSS over it.
# Linux's VmHWM is this process's own peak; ru_maxrss is not a fit there, because exec (after
# subprocess's vfork) starts it at the *parent's* peak, which would hide up to pytest's size.
CHILD = """
import json, resource, sys, time
from bot.content.loader import validate

def peak_mb():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 1048576

before = peak_mb()
start = time.perf_counter()
content, problems = validate(sys.argv[1])
elapsed = time.perf_counter() - start
print(json.dumps({"valid": content is not None, "seconds": elapsed,
                  "growth_mb": peak_mb() - before,
                  "problems": [str(p) for p in problems if p.severity == "error"]}))
"""


def validate_in_child(repo: Path) -> dict[str, Any]:
    """Validate ``repo`` in a fresh interpreter; a crash (even a segfault) fails the test."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(repo)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"validate crashed ({result.returncode}): {result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def billion_laughs(levels: int = 9) -> str:
    """The classic alias bomb: 9 levels of 9 aliases expand to 9**9 (387 million) strings."""
    lines = ["lang: fr", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghijklmnopqrstuvwxyz"[:levels]
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines.append(f"text: *{names[-1]}")
    return "\n".join(lines) + "\n"


def assert_refused_cheaply(report: dict[str, Any]) -> None:
    assert report["valid"] is False
    assert report["seconds"] < MAX_SECONDS, report
    assert report["growth_mb"] < MAX_GROWTH_MB, report


@pytest.mark.parametrize("rel", ["content/posts/bomb.yaml", "schedules/slots.yaml"])
def test_billion_laughs_alias_bomb_is_refused_fast(example_repo: Path, rel: str) -> None:
    """An alias bomb in a post or a schedule file is refused at its first anchor, cheaply."""
    (example_repo / rel).write_text(billion_laughs(), encoding="utf-8")
    report = validate_in_child(example_repo)
    assert_refused_cheaply(report)
    assert report["problems"] == [
        f"{rel}:2:4: YAML anchors and aliases (&name / *name) are not supported "
        "(write the value out in full)"
    ]


def test_50_mb_post_file_is_refused_without_reading_it(example_repo: Path) -> None:
    """A 50 MB post (sparse, made in an instant) is refused by its size alone."""
    with (example_repo / "content/posts/huge.yaml").open("wb") as handle:
        handle.write(b"lang: fr\ntext: ")
        handle.truncate(50 * 1024 * 1024)
    report = validate_in_child(example_repo)
    assert_refused_cheaply(report)
    assert report["problems"] == [
        "content/posts/huge.yaml: file is 50.0 MB; diplobot files are limited to 1 MB "
        "(a post is a few KB of text; put images under content/media/)"
    ]


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_brackets_are_refused_not_a_crash(example_repo: Path, depth: int) -> None:
    """`[[[[...]]]]` 100,000 deep (200 KB) used to overflow the stack; now it is one error."""
    body = "lang: fr\ntext: Bonjour\nlanguages: " + "[" * depth + "]" * depth + "\n"
    (example_repo / "content/posts/deep.yaml").write_text(body, encoding="utf-8")
    report = validate_in_child(example_repo)
    assert_refused_cheaply(report)
    # The root block is level 1; the 32nd '[' (column 12 + 31) would be level 33.
    assert report["problems"] == [
        "content/posts/deep.yaml:3:43: blocks are nested more than 32 levels deep "
        "(a post needs only a few levels; check the indentation and the brackets)"
    ]


def test_the_child_measurement_sees_real_work(tmp_path: Path) -> None:
    """The probe itself can fail: touching 150 MB in the measured call shows up as growth."""
    probe = CHILD.replace(
        "content, problems = validate(sys.argv[1])",
        "ballast = b'x' * (150 * 1048576); content, problems = validate(sys.argv[1])",
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(result.stdout)["growth_mb"] >= MAX_GROWTH_MB


@pytest.mark.parametrize("size", [0, 1, 300, 65_535, 65_536, 65_537, 200_000])
def test_read_regular_reads_every_byte_up_to_the_limit(tmp_path: Path, size: int) -> None:
    """The first read is sized by fstat; the bytes are the file's, cut at ``limit``."""
    from bot.content.files import read_regular

    path = tmp_path / "f"
    data = bytes(i % 251 for i in range(size))
    path.write_bytes(data)
    assert read_regular(path, size + 10) == (data, size)
    assert read_regular(path, 100_000) == (data[:100_000], size)


def test_read_regular_reads_a_file_that_says_size_zero() -> None:
    """/proc files are regular and report size 0: they are read to their end all the same."""
    from bot.content.files import read_regular

    data, size = read_regular("/proc/self/status", 1 << 20)
    assert size == 0 and b"Name:" in data and data.endswith(b"\n")
