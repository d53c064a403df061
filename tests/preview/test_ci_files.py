"""The CI files content repositories copy (docs/ci/, .pre-commit-hooks.yaml) call diplobot
with commands and options it has: checked with diplobot's own argument parser."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from preview.helpers import ROOT

from bot.cli import build_parser

FILES = ["docs/ci/github-preview.yml", "docs/ci/gitlab-preview.yml", ".pre-commit-hooks.yaml"]


def _commands(node: Any, key: str = "") -> list[str]:
    """Every shell line of ``node`` (a parsed YAML file) that runs ``diplobot``: in a GitHub
    step's ``run``, a GitLab job's ``script``, a hook's ``entry``."""
    found: list[str] = []
    if isinstance(node, dict):
        for name, value in node.items():
            found += _commands(value, str(name))
    elif isinstance(node, list):
        for value in node:
            found += _commands(value, key)
    elif isinstance(node, str) and key in ("run", "script", "entry"):
        for line in node.splitlines():
            line = line.strip().lstrip("{").strip()
            if line.startswith("diplobot "):
                found.append(line)
    return found


@pytest.mark.parametrize("name", FILES)
def test_every_diplobot_command_in_the_ci_files_parses(name: str) -> None:
    """Each `diplobot ...` line (up to a pipe or redirection) is accepted by the parser."""
    commands = _commands(yaml.safe_load((ROOT / name).read_text(encoding="utf-8")))
    assert commands, name
    for line in commands:
        words = shlex.split(line.replace('"$BASE"', "origin/main"), comments=True)
        cut = next((i for i, w in enumerate(words) if w in ("|", ">", "||", "&&")), len(words))
        args = build_parser().parse_args(words[1:cut])
        assert args.command in ("validate", "preview", "plan"), line


def test_the_github_workflow_validates_previews_and_comments() -> None:
    """The three steps the issue asks for are there, with the base's commits fetched."""
    text = (ROOT / "docs/ci/github-preview.yml").read_text(encoding="utf-8")
    flow = yaml.safe_load(text)
    steps = flow["jobs"]["preview"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0
    runs = " ".join(s.get("run", "") for s in steps)
    assert "diplobot validate --root . --format github" in runs
    assert "upload-artifact" in " ".join(s.get("uses", "") for s in steps)
    assert "--format markdown --changed-since" in runs
    assert "gh pr comment" in runs
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hooks[0]["id"] == "diplobot-validate"
    assert Path(ROOT / ".pre-commit-hooks.yaml").is_file()
