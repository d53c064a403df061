"""Pauses: the committed switch (``schedules/slots.yaml``) and the runtime one (``diplobot
pause|resume``, kept in the state database), read together. The only SQL of pauses."""

from __future__ import annotations

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.content.types import ContentSet
from bot.store import runtime_pauses, utc_now_iso

ALL = "*"
"""The runtime switch of every account."""


def set_pause(engine: Engine, account: str | None, reason: str, paused: bool) -> None:
    """``diplobot pause|resume [ACCOUNT]``: a runtime switch kept in the state database."""
    key = account or ALL
    with engine.begin() as conn:
        if paused:
            stmt = sqlite_insert(runtime_pauses).values(
                account=key, reason=reason, at=utc_now_iso()
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[runtime_pauses.c.account],
                    set_={"reason": stmt.excluded.reason, "at": stmt.excluded.at},
                )
            )
        else:
            conn.execute(delete(runtime_pauses).where(runtime_pauses.c.account == key))


def paused_accounts(content: ContentSet, engine: Engine) -> dict[str, str]:
    """Accounts paused now (committed switch or ``diplobot pause``) → reason."""
    out: dict[str, str] = {}
    pause = content.slots.pause
    for account in content.accounts.accounts:
        if pause.all or account in pause.accounts:
            out[account] = pause.reason or "paused in schedules/slots.yaml"
    with engine.connect() as conn:
        for account, reason in conn.execute(
            select(runtime_pauses.c.account, runtime_pauses.c.reason)
        ):
            targets = list(content.accounts.accounts) if account == ALL else [account]
            for target in targets:
                out.setdefault(target, reason or "paused with 'diplobot pause'")
    return out
