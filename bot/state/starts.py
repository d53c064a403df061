"""Process starts as the state database knows them: each one's row in ``instances`` (host, pid,
pid namespace, first and last seen), written by the ledger's heartbeat while it holds claims
(``bot/state/ledger.py``), a service's mark (``bot/state/presence.py``) and the start that
takes the service's lease (``bot/state/lease.py``), so whoever finds its name in a claim or in
the lease can tell whether it is provably dead (:func:`bot.instance.gone_reason`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from bot.instance import Instance
from bot.state.dialect import upsert
from bot.state.tables import instances


def write_instance(conn: Connection, me: Instance, at: datetime) -> None:
    """Write or renew ``me``'s row in ``instances`` (its ``seen_at``), in ``conn``'s
    transaction: the claims' heartbeat, the service's mark (bot/state/presence.py) and the
    lease's new holder (bot/state/lease.py)."""
    values = {
        "instance": me.id,
        "host": me.host,
        "pid": me.pid,
        "pid_space": me.pid_space,
        "started_at": at,
        "seen_at": at,
    }
    conn.execute(upsert(conn, instances, values, key=["instance"], update=["seen_at"]))
