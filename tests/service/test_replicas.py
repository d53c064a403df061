"""Two replicas, one active (issue 12, item 3): two real ``diplobot run`` processes on one
state database follow one content repository; one holds the lease and publishes, the other
stands by (syncs, validates, answers over HTTP) and takes over when the active one is
SIGKILLed, or frozen (SIGSTOP) past its lease. Nothing is published twice: the fake X records
the User-Agent of every request, which names the replica (host and instance id) that sent it.

The state database is a SQLite file shared by the two processes (each replica has its own
folder, for its clone and its logs, with a link to the shared file) or a PostgreSQL database
(``tests/servers/postgres.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers.x import XServer
from service.conftest import (
    HANDLES,
    ContentRepo,
    ServiceFactory,
    ServiceProcess,
    due_in,
    post_yaml,
    sleep_until,
    wait_for,
    wait_out_backoff,
)
from sqlalchemy.engine import make_url

LEASE = 3.0  # DIPLOBOT_ACTIVE_LEASE in these tests: renewed every second
CLAIM_LEASE = 5.0  # DIPLOBOT_LEASE: a frozen owner's claims are stale after this
TAKEOVER = LEASE + LEASE / 3  # the documented bound: the lease, plus one poll


@dataclass
class Replica(ServiceProcess):
    """A ``diplobot run`` whose state is ``url`` (shared with the other replicas); its clone
    and logs in its own folder."""

    url: str = ""

    def command(self, *args: str, root: Path | None = None) -> list[str]:
        where = root or self.state_dir
        return [sys.executable, "-m", "bot", *args, "--root", str(where), "--state", self.url]

    @property
    def role(self) -> str | None:
        code, _body = self.get("/healthz")
        if code == 0:
            return None
        found: str = self.status()["role"]
        return found

    @property
    def instance(self) -> str:
        """Its instance id (what its User-Agent names)."""
        owner: str = self.status()["instance"]
        return owner.partition("@")[0]


def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Path], str]:
    """For each replica's folder, the URL of the one shared state database."""
    if request.param == "postgresql":
        pg: str = request.getfixturevalue("pg_url")
        return lambda _folder: pg
    if request.param == "sqlite":
        shared = tmp_path / "shared" / "state.sqlite"
        shared.parent.mkdir()

        def url(folder: Path) -> str:
            (folder / "state.sqlite").symlink_to(shared)
            return f"sqlite:///{folder / 'state.sqlite'}"  # not resolved: the folder is its own

        return url
    raise AssertionError(request.param)


ReplicaFactory = Callable[..., Replica]


@pytest.fixture(params=["sqlite", "postgresql"])
def replicas(
    request: pytest.FixtureRequest, service: ServiceFactory, tmp_path: Path
) -> Iterator[ReplicaFactory]:
    """Make a replica (not started) on the shared state database, with extra environment;
    every one made is stopped at the end (SIGCONT first, should it be frozen)."""
    url_for = shared_url(request, tmp_path)
    made: list[Replica] = []

    def make(**extra: str) -> Replica:
        base = service(
            DIPLOBOT_ACTIVE_LEASE=str(LEASE),
            DIPLOBOT_LEASE=str(CLAIM_LEASE),
            DIPLOBOT_SWEEP_INTERVAL="0.5",
            **extra,
        )
        replica = Replica(base.state_dir, base.env, url=url_for(base.state_dir))
        made.append(replica)
        return replica

    yield make
    for replica in made:
        if replica.proc is not None and replica.proc.poll() is None:
            os.kill(replica.proc.pid, signal.SIGCONT)
            replica.proc.kill()
            replica.proc.wait(10)


def active_and_standby(make: ReplicaFactory) -> tuple[Replica, Replica]:
    first = make()
    first.start()
    wait_for("the first replica to be active", lambda: first.role == "active")
    second = make()
    second.start()
    assert second.role == "standby"
    return first, second


def at(rev: str, *replicas: Replica) -> bool:
    return all(r.status()["revision"] == rev for r in replicas)


def tweets_by(x: XServer) -> Counter[str | None]:
    """How many posts each User-Agent created, on every account."""
    return Counter(t["user_agent"] for h in HANDLES for t in x.timeline(h))


def assert_once_each(x: XServer, text: str) -> None:
    for handle in HANDLES:
        texts = Counter(t["text"] for t in x.timeline(handle))
        assert max(texts.values(), default=0) == 1, f"{handle}: {texts}"
        assert sum(1 for t in texts if t.startswith(text)) == 1, f"{handle}: {texts}"


def test_one_replica_is_active_and_the_other_stands_by(
    replicas: ReplicaFactory, content_repo: ContentRepo, x: XServer
) -> None:
    """Both sync and validate and answer over HTTP, each saying its role; only the active one
    publishes (the fake X sees one User-Agent); each lists the other in /status, without an
    alert; /metrics shows the role."""
    active, standby = active_and_standby(replicas)
    due = due_in(3)
    content_repo.write("content/posts/climat.yaml", post_yaml("climat", due, "Climat : deux"))
    rev = content_repo.commit("climat")
    wait_for(
        "both at the new revision",
        lambda: all(r.status()["revision"] == rev for r in (active, standby)),
    )
    sleep_until(due)
    wait_for("the posts", lambda: all(len(x.timeline(h)) == 1 for h in HANDLES))
    time.sleep(2)  # the standby's sweeps and syncs go on: it publishes nothing
    assert_once_each(x, "Climat")
    agents = tweets_by(x)
    assert list(agents) == [f"diplobot/0.1.0 ({os.uname().nodename}/{active.instance})"]
    assert standby.instance not in str(agents)
    assert all(r.user_agent is not None and "diplobot/" in r.user_agent for r in x.requests)
    assert (active.get("/healthz"), standby.get("/healthz")) == (
        (200, "ok (active)\n"),
        (200, "ok (standby)\n"),
    )
    assert standby.get("/readyz") == (200, "ready (standby)\n")
    for one, other in ((active, standby), (standby, active)):
        status = one.status()
        assert [o["instance"] for o in status["other_services"]] == [other.instance]
        assert status["lease"]["holder"].startswith(active.instance)
    metrics = standby.get("/metrics")[1]
    assert 'diplobot_role{role="standby"} 1.0' in metrics
    assert 'diplobot_role{role="active"} 0.0' in metrics
    assert 'diplobot_role{role="active"} 1.0' in active.get("/metrics")[1]
    assert "service.shared_state" not in active.log() + standby.log()


def test_the_standby_publishes_within_the_takeover_time_when_the_active_is_killed(
    replicas: ReplicaFactory, content_repo: ContentRepo, x: XServer
) -> None:
    """SIGKILL of the active replica a moment before a post falls due: the standby takes
    the lease within its duration plus one poll, applies the revision, and publishes the post
    once on every account; its User-Agent is on every post."""
    active, standby = active_and_standby(replicas)
    due = due_in(6)
    content_repo.write("content/posts/soudan.yaml", post_yaml("soudan", due, "Soudan : appel"))
    rev = content_repo.commit("soudan")
    wait_for(
        "both at the new revision",
        lambda: all(r.status()["revision"] == rev for r in (active, standby)),
    )
    assert [r["state"] for r in active.rows("soudan")] == ["PENDING"] * 4
    assert standby.proc is not None and active.proc is not None
    killed = time.monotonic()
    due_after = (due - due_in(0)).total_seconds() + 1  # seconds from the kill to the due time
    active.proc.send_signal(signal.SIGKILL)
    active.proc.wait(10)
    wait_for("the standby to take over", lambda: standby.role == "active", timeout=TAKEOVER + 5)
    took = time.monotonic() - killed
    wait_for("the posts", lambda: all(len(x.timeline(h)) == 1 for h in HANDLES), timeout=20)
    published = time.monotonic() - killed
    assert_once_each(x, "Soudan")
    assert list(tweets_by(x)) == [f"diplobot/0.1.0 ({os.uname().nodename}/{standby.instance})"]
    assert took <= TAKEOVER + 1.0, took  # one more second: the poll's phase, the HTTP look
    assert published <= max(took, due_after) + 4, (published, took, due_after)
    events = [e["message"] for e in standby.events()]
    assert "service.active" in events
    assert [r["state"] for r in standby.rows("soudan")] == ["POSTED"] * 4


class FreezingX(XServer):
    """The fake X that freezes (SIGSTOP) a process at its first request matching ``freeze``
    (method, path, the instance id its User-Agent names, and the pid to stop), before
    answering it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.freeze: tuple[str, str, str, int] | None = None
        self.frozen = threading.Event()

    def _serve(self, handler: Any) -> None:
        target = self.freeze
        agent = handler.headers.get("User-Agent") or ""
        if (
            target is not None
            and (handler.command, handler.path.partition("?")[0]) == target[:2]
            and target[2] in agent
        ):
            self.freeze = None
            os.kill(target[3], signal.SIGSTOP)
            self.frozen.set()
        super()._serve(handler)


@pytest.fixture
def freezing_x() -> Iterator[FreezingX]:
    from publish.conftest import ACCOUNTS, APP

    with FreezingX(accounts=ACCOUNTS, consumer=APP, duplicate_window=0) as server:
        yield server


@pytest.fixture
def x(freezing_x: FreezingX) -> XServer:  # every replica here talks to the freezing fake
    return freezing_x


def test_a_frozen_active_replica_never_publishes_after_the_standby_took_over(
    replicas: ReplicaFactory, content_repo: ContentRepo, freezing_x: FreezingX
) -> None:
    """The active replica claims the first part of a three-part thread, then is frozen
    (SIGSTOP) before its post: X freezes it at the account check that comes before the first
    post (``GET /2/users/me``). Past its lease the standby takes over, reconciles the frozen
    claim once stale (not on X: sent again) and publishes the thread. Let go (SIGCONT), the old
    replica gets its answer and would post: it may not any more (it lost the lease), so it
    sends nothing, and claims nothing. X's duplicate check is off: only the lease stands
    between the two replicas.

    On SQLite, a process frozen while it holds the file's write lock (a commit of another of
    its threads at that instant) stops every other process until it resumes: then the standby
    cannot take over during the freeze (docs/deploy.md), but nothing is published twice
    either. On PostgreSQL the standby always takes over during the freeze."""
    x = freezing_x
    active, standby = active_and_standby(replicas)
    assert active.proc is not None
    x.freeze = ("GET", "/2/users/me", active.instance, active.proc.pid)
    due = due_in(3)
    parts = ["Sommet : la France réunit ses partenaires. 1/3", "Deuxième partie. 2/3", "Fin. 3/3"]
    post = [f"id: sommet\nlang: fr\nlanguages: [fr]\npublish_at: {due.isoformat()}"]
    post += [f'text: "{parts[0]}"', "thread:", *[f'  - text: "{p}"' for p in parts[1:]]]
    content_repo.write("content/posts/sommet.yaml", "\n".join(post) + "\n")
    rev = content_repo.commit("sommet")
    wait_for("both at the new revision", lambda: at(rev, active, standby))
    sleep_until(due)
    assert x.frozen.wait(15), "the active replica never checked its account"
    frozen = [r for r in standby.ledger("sommet") if r["state"] == "SENDING"]
    assert [r["part"] for r in frozen] == [1]  # claimed by the frozen replica, not sent

    def all_posted() -> bool:
        wait_out_backoff(standby.url)  # the frozen claim, not found on X, is sent again
        return len(x.timeline("francediplo")) == 3

    # Frozen for the lease, the claims' lease and a takeover's work.
    freeze = LEASE + CLAIM_LEASE + 10
    deadline = time.monotonic() + freeze
    took_over = done = False
    while time.monotonic() < deadline and not done:
        took_over = took_over or standby.role == "active"
        done = all_posted()
        time.sleep(0.3)
    if standby.url.startswith("postgresql"):
        assert took_over and done, "the standby did not take over during the freeze"
    os.kill(active.proc.pid, signal.SIGCONT)
    wait_for("the thread", all_posted, timeout=60)
    wait_for("the standby to be active", lambda: standby.role == "active", timeout=10)
    wait_for("the old replica to step down", lambda: active.role == "standby", timeout=10)
    time.sleep(3)  # whatever it still had in hand, it had the time to try
    timeline = x.timeline("francediplo")
    assert [t["text"] for t in timeline] == parts
    assert {t["user_agent"] for t in timeline} == {
        f"diplobot/0.1.0 ({os.uname().nodename}/{standby.instance})"
    }
    from_old = [
        r for r in x.requests if r.method == "POST" and active.instance in (r.user_agent or "")
    ]
    assert from_old == []
    rows = standby.ledger("sommet")
    assert [r["state"] for r in rows] == ["POSTED"] * 3
    assert "service.standby" in [e["message"] for e in active.events()]


class CuttableProxy:
    """A TCP proxy to ``target`` on 127.0.0.1: :meth:`cut` drops every connection through it
    and refuses new ones (a network partition between one replica and the database) until
    :meth:`mend`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.open = True
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if not self.open:
                    client.close()
                    continue
                upstream = socket.create_connection(self.target)
                self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            self.open = False
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def mend(self) -> None:
        with self.lock:
            self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_the_active_replica_cut_off_from_postgresql_stops_and_the_other_takes_over(
    service: ServiceFactory, content_repo: ContentRepo, x: XServer, pg_url: str
) -> None:
    """The active replica reaches PostgreSQL through a proxy that is cut a moment before a
    post falls due: it cannot renew its lease, stops publishing on its own and says standby;
    the other replica takes over and publishes the post once. Mended, the first one stays
    standby (the lease is held)."""
    url = make_url(pg_url)
    proxy = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    through = url.set(port=proxy.port).render_as_string(hide_password=False)
    made = []
    for state in (through, pg_url):
        base = service(
            DIPLOBOT_ACTIVE_LEASE=str(LEASE),
            DIPLOBOT_LEASE=str(CLAIM_LEASE),
            DIPLOBOT_SWEEP_INTERVAL="0.5",
        )
        made.append(Replica(base.state_dir, base.env, url=state))
    cut_off, other = made
    try:
        cut_off.start()
        wait_for("the first replica to be active", lambda: cut_off.role == "active")
        other.start()
        assert other.role == "standby"
        due = due_in(5)
        content_repo.write("content/posts/coupure.yaml", post_yaml("coupure", due, "Coupure"))
        rev = content_repo.commit("coupure")
        wait_for("both at the new revision", lambda: at(rev, cut_off, other))
        proxy.cut()
        cut_at = time.monotonic()
        wait_for(
            "the cut-off replica to step down",
            lambda: cut_off.get("/healthz")[1].endswith("(standby)\n"),
            timeout=LEASE + 5,
        )
        stepped_down = time.monotonic() - cut_at
        wait_for("the other to take over", lambda: other.role == "active", timeout=TAKEOVER + 5)
        took_over = time.monotonic() - cut_at
        assert stepped_down < took_over  # it stopped before the other could start
        sleep_until(due)
        wait_for("the posts", lambda: all(len(x.timeline(h)) == 1 for h in HANDLES), timeout=20)
        proxy.mend()
        wait_for("the cut-off replica back", lambda: cut_off.get("/status")[0] == 200, timeout=20)
        time.sleep(2)
        assert cut_off.role == "standby" and other.role == "active"
        assert_once_each(x, "Coupure")
        assert list(tweets_by(x)) == [f"diplobot/0.1.0 ({os.uname().nodename}/{other.instance})"]
        events = cut_off.events()
        assert any(
            e["message"] == "service.standby" and e["level"]["name"] == "ERROR" for e in events
        )
        assert any(e["message"] == "lease.unreachable" for e in events)
    finally:
        for replica in made:
            if replica.proc is not None and replica.proc.poll() is None:
                replica.proc.kill()
                replica.proc.wait(10)
        proxy.close()
