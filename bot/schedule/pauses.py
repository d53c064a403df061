"""Pauses: the committed switch (``schedules/slots.yaml``) and the runtime one (``diplobot
pause|resume``, kept in the state: ``bot/state/pauses.py``), read together. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from bot.content.types import ContentSet
from bot.state.pauses import EVERY_ACCOUNT


def paused_accounts(content: ContentSet, runtime: Mapping[str, str]) -> dict[str, str]:
    """Accounts paused now → reason: the committed switch first, then the runtime one
    (``runtime``: account or ``*`` → reason, as the state keeps it)."""
    out: dict[str, str] = {}
    for account in content.accounts.accounts:
        # Each mission's slots.yaml pauses its own accounts.
        mission = content.missions.get(content.mission_of(account))
        pause = mission.slots.pause if mission is not None else content.slots.pause
        if pause.all or account in pause.accounts:
            where = mission.layout.slots if mission is not None else "schedules/slots.yaml"
            out[account] = pause.reason or f"paused in {where}"
    for account, reason in runtime.items():
        targets = list(content.accounts.accounts) if account == EVERY_ACCOUNT else [account]
        for target in targets:
            out.setdefault(target, reason or "paused with 'diplobot pause'")
    return out
