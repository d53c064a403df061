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


@dataclass(frozen=True, slots=True)
class Owner:
    """``claimed_by`` (or the lease's ``owner``) read back; ``instance`` is "" in a claim
    written before instances existed (``HOST:PID``)."""

    instance: str
    host: str
    pid: int | None

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        if not text:
            return None
        instance, at, rest = text.partition("@")
        if not at:
            instance, rest = "", text
        host, colon, pid = rest.rpartition(":")
        if not colon:
            return None
        return cls(instance, host, int(pid) if pid.isdigit() else None)


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


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # not a valid pid here
        return False
    return True


def gone_reason(host: str, pid: int | None, pid_space: str | None, me: Instance) -> str | None:
    """Why the process start of ``host``/``pid`` (another instance than ``me``; ``pid_space``:
    its pid namespace, None when not known) is provably dead, seen from ``me``; None when it
    may be alive. The rules every "is its owner gone?" here shares (stale claims, live
    services, the service's lease):

    - same host and pid as ``me``: the pid is ours now, so it is a previous life of this
      process (the restarted container, PID 1 again);
    - same host and pid namespace, and that pid is gone.

    Another host, an unknown namespace or a running pid: it may be alive (only time tells)."""
    if host != me.host or pid is None:
        return None
    if pid == me.pid:
        return f"process {pid} on {host} is another start now"
    if pid_space is not None and pid_space == me.pid_space and not pid_running(pid):
        return f"process {pid} on {host} is gone"
    return None


def user_agent() -> str:
    """``diplobot/<version> (<host>/<instance id>)``: what this process start's requests to a
    platform say they come from (two replicas on one host differ by their instance id)."""
    me = this_instance()
    return f"diplobot/{__version__} ({me.host}/{me.id})"
