"""Runtime pauses (``diplobot pause|resume [ACCOUNT]``), kept in the state database."""

from __future__ import annotations

from sqlalchemy import Engine, delete, select

from bot.state.dialect import upsert
from bot.state.tables import runtime_pauses, utc_now

EVERY_ACCOUNT = "*"


class Pauses:
    """The runtime switch: account (or ``*``, every account) → why it is paused."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def set(self, account: str | None, reason: str, paused: bool) -> None:
        """Pause (or resume) ``account``, or every account when it is None."""
        key = account or EVERY_ACCOUNT
        with self.engine.begin() as conn:
            if paused:
                values = {"account": key, "reason": reason, "at": utc_now()}
                conn.execute(
                    upsert(conn, runtime_pauses, values, key=["account"], update=["reason", "at"])
                )
            else:
                conn.execute(delete(runtime_pauses).where(runtime_pauses.c.account == key))

    def current(self) -> dict[str, str]:
        """Paused account (``*``: every account) → reason, as given (possibly empty)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(runtime_pauses.c.account, runtime_pauses.c.reason))
            return {account: reason for account, reason in rows}
