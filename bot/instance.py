"""This process start: who claims deliveries, holds the service's lease and signs requests.

An :class:`Instance` is one start of one process: a random id new at every start, the host
and the pid (for people, and for the ledger's quick checks), the pid namespace. The ledger
writes it in ``claimed_by`` (``bot/state/ledger.py``), the lease names it as its holder
(``bot/state/lease.py``), and the X client names it in its User-Agent, so a request on X's side
says which replica sent it (:func:`user_agent`). No database here: publishers import it.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from dataclasses import dataclass

from bot import __version__


@dataclass(frozen=True, slots=True)
class Instance:
    """One start of one process: what ``claimed_by`` names."""

    id: str  # random, new at every start
    host: str
    pid: int
    pid_space: str  # the pid namespace ("pid:[4026531836]"), "" where there is none

    @property
    def owner(self) -> str:
        return f"{self.id}@{self.host}:{self.pid}"


def _pid_space() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


_THIS: Instance | None = None
_THIS_LOCK = threading.Lock()


def this_instance() -> Instance:
    """This process start (a forked child is a start of its own)."""
    global _THIS
    with _THIS_LOCK:
        if _THIS is None or _THIS.pid != os.getpid():
            _THIS = Instance(secrets.token_hex(6), socket.gethostname(), os.getpid(), _pid_space())
        return _THIS


def user_agent() -> str:
    """``diplobot/<version> (<host>/<instance id>)``: what this process start's requests to a
    platform say they come from (two replicas on one host differ by their instance id)."""
    me = this_instance()
    return f"diplobot/{__version__} ({me.host}/{me.id})"
