"""Editors get the same messages on every PyYAML that pyproject.toml allows.

PyYAML 6.0.4 bundles a libyaml that stops at its own nesting limit (1,000 levels) while it scans
ahead, so a deeply nested file used to get libyaml's "exceeded maximum nesting depth" at the
place where libyaml gave up, instead of diplobot's own message where the 33rd level opens.
Each version below is installed (hash-checked, from tests/data/pyyaml/) into a folder of its own
and put first on the path of a child interpreter that parses the same files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PINS = ROOT / "tests" / "data" / "pyyaml"
VERSIONS = sorted(p.stem.removeprefix("pyyaml-") for p in PINS.glob("pyyaml-*.txt"))

TOO_DEEP = (
    "blocks are nested more than 32 levels deep "
    "(a post needs only a few levels; check the indentation and the brackets)"
)
CASES: dict[str, tuple[str, str]] = {
    # name: (file text, what the editor sees)
    "brackets 1,000 deep": (
        "lang: fr\nlanguages: " + "[" * 1000 + "]" * 1000 + "\n",
        f"p.yaml:2:43: {TOO_DEEP}",
    ),
    "brackets 100,000 deep": (
        "lang: fr\nlanguages: " + "[" * 100_000 + "]" * 100_000 + "\n",
        f"p.yaml:2:43: {TOO_DEEP}",
    ),
    "flow mappings 2,000 deep": (
        "lang: fr\nx: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n",
        f"p.yaml:2:128: {TOO_DEEP}",
    ),
    "indented blocks 1,500 deep": (
        "lang: fr\n" + "".join(" " * i + "a:\n" for i in range(1500)) + " " * 1500 + "b: 1\n",
        f"p.yaml:34:33: {TOO_DEEP}",
    ),
    "dashes 2,000 deep": ("lang: fr\nx:\n" + "- " * 2000 + "1\n", f"p.yaml:3:63: {TOO_DEEP}"),
    "accented text before the brackets": (
        "lang: fr\ntext: 'é'\nlanguages: [ 'é', " + "[" * 1200 + "]" * 1200 + "]\n",
        f"p.yaml:3:49: {TOO_DEEP}",
    ),
    "quote never closed": (
        "lang: fr\ntext: 'Bonjour\n",
        "p.yaml:2:7: YAML syntax error: this quoted text is never closed "
        "(add the closing quote at the end of the text)",
    ),
    "a valid post": ("lang: fr\ntext: Bonjour\n", "valid"),
}

CHILD = """
import json, sys, yaml
from bot.content.yamlsrc import YamlProblem, parse_yaml
out = {"version": yaml.__version__, "libyaml": yaml.__with_libyaml__, "seen": {}}
for name, text in json.load(sys.stdin).items():
    try:
        parse_yaml(text, "p.yaml")
        out["seen"][name] = "valid"
    except YamlProblem as exc:
        out["seen"][name] = str(exc)
print(json.dumps(out))
"""


def parse_with(path_first: list[str]) -> dict[str, object]:
    """Parse every case in a child whose ``sys.path`` starts with ``path_first``."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps({name: text for name, (text, _) in CASES.items()}),
        env={**os.environ, "PYTHONPATH": os.pathsep.join([*path_first, str(ROOT)])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "a second message (or a warning) reached stderr"
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_pins_include_the_versions_that_differ() -> None:
    assert {"6.0.3", "6.0.4"} <= set(VERSIONS)


@pytest.mark.parametrize("version", ["installed", *VERSIONS])
def test_same_messages_on_every_pyyaml(version: str, tmp_path: Path) -> None:
    """Each case gives exactly its expected message, with libyaml, on this PyYAML."""
    if version == "installed":
        path_first: list[str] = []
        expected_version = yaml.__version__
    else:
        target = tmp_path / f"pyyaml-{version}"
        install = subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--no-deps", "--only-binary=:all:", "--require-hashes",
                "--target", str(target), "-r", str(PINS / f"pyyaml-{version}.txt"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
        assert install.returncode == 0, install.stdout + install.stderr
        path_first, expected_version = [str(target)], version
    report = parse_with(path_first)
    assert report["version"] == expected_version
    assert report["libyaml"] is True, "the C parser is what differs between versions"
    assert report["seen"] == {name: message for name, (_, message) in CASES.items()}
