"""The bundled example repository (content/ and schedules/) as tests copy it.

The example has accounts on every platform, so that ``diplobot plan`` and the dry run show
them. Tests that publish through one fake server (the fake X) keep only that platform's
accounts: :func:`keep_platforms`.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import yaml

from bot.platforms import DEFAULT_PLATFORM


def keep_platforms(repo: Path, platforms: Collection[str]) -> Path:
    """Remove from ``repo``'s schedules/accounts.yaml every account not on ``platforms``
    (the file's comments go with them)."""
    path = repo / "schedules" / "accounts.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["accounts"] = {
        account_id: account
        for account_id, account in data["accounts"].items()
        if account.get("platform", DEFAULT_PLATFORM) in platforms
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return repo
