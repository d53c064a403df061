"""`diplobot validate` imports only what checking files needs.

A whole `diplobot validate` process is held to a bare YAML parse of the same files
(bench/bench_validate.py, docs/benchmarks.md); start-up counts there, and these libraries cost
~0.5 s together. The database, the publishers, the scheduler, logging and the X counter's
library (its tables are generated into bot/text/_x_tables.py) are for the other commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

NOT_FOR_VALIDATE = (
    "sqlalchemy",
    "twitter_text",
    "pkg_resources",
    "tweepy",
    "aiohttp",
    "requests",
    "httpx",
    "mastodon",
    "atproto",
    "telegram",
    "deepl",
    "deep_translator",
    "apscheduler",
    "loguru",
    "asyncio",
)

PROBE = """
import json, sys
from bot.cli import main
code = main(["validate", "--root", sys.argv[1]])
print(json.dumps([code, sorted(sys.modules)]))
"""


@pytest.mark.parametrize(
    "text",
    [
        "Un texte court. https://www.diplomatie.gouv.fr/fr #COP31",
        # Over the limit: the exact X counter runs, from the generated tables.
        "Bientôt 🇫🇷 " * 30 + "https://www.diplomatie.gouv.fr/fr",
    ],
)
def test_validate_imports_no_database_publisher_or_counter_library(
    tmp_path: Path, text: str
) -> None:
    repo = tmp_path / "repo"
    (repo / "content/posts").mkdir(parents=True)
    (repo / "schedules").mkdir()
    (repo / "schedules/accounts.yaml").write_text(
        (ROOT / "schedules/accounts.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (repo / "content/posts/p.yaml").write_text(
        f"lang: fr\npublish_at: 2026-12-01 10:00\ntext: {json.dumps(text)}\n", encoding="utf-8"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(repo)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    code, modules = json.loads(done.stdout.splitlines()[-1])
    assert code == (0 if len(text) < 200 else 1), done.stdout
    imported = {m.split(".")[0] for m in modules}
    assert imported.isdisjoint(NOT_FOR_VALIDATE), sorted(imported & set(NOT_FOR_VALIDATE))
