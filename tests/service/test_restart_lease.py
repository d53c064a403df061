"""A single ``diplobot run`` SIGKILLed and started again takes its previous life's lease at
once (bot/state/lease.py, "take from the dead"), rather than waiting for it to run out; a lease
whose holder may be alive (a second replica, even frozen) is never taken early.

Real processes on a real state database (a SQLite file, or PostgreSQL: ``tests/servers/
postgres.py``), with ``DIPLOBOT_ACTIVE_LEASE`` at 60 s so that waiting for the lease would
show: the restarted service must publish within a third of it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pidns import kill_pid_1, need_pid_namespaces, stop_pid_1
from servers.x import XServer
from service.conftest import (
    HANDLES,
    ContentRepo,
    ServiceFactory,
    due_in,
    post_yaml,
    wait_for,
)
from service.test_container_restart import start_as_pid_1
from service.test_replicas import Replica, assert_once_each, shared_url, tweets_by

LEASE = 60.0  # DIPLOBOT_ACTIVE_LEASE here: a restart that waited for it would take 60 s
QUICK = LEASE / 3  # the restarted service publishes well within this (start-up included)

Make = Callable[[], Replica]


@pytest.fixture(params=["sqlite", "postgresql"])
def make(request: pytest.FixtureRequest, service: ServiceFactory, tmp_path: Path) -> Iterator[Make]:
    """Make a service (not started) on the one state database; every one made is killed at
    the end (SIGCONT first, should it be frozen)."""
    url_for = shared_url(request, tmp_path)
    made: list[Replica] = []

    def new() -> Replica:
        base = service(DIPLOBOT_ACTIVE_LEASE=str(LEASE), DIPLOBOT_SWEEP_INTERVAL="0.5")
        made.append(Replica(base.state_dir, base.env, url=url_for(base.state_dir)))
        return made[-1]

    yield new
    for replica in made:
        if replica.proc is not None and replica.proc.poll() is None:
            os.kill(replica.proc.pid, signal.SIGCONT)
            replica.proc.kill()
            replica.proc.wait(10)


def due_post(content_repo: ContentRepo, post: str, text: str) -> str:
    """A post due 2 s ago (within DIPLOBOT_MAX_LATE: it goes out at once), committed."""
    content_repo.write(f"content/posts/{post}.yaml", post_yaml(post, due_in(-2), text))
    return content_repo.commit(post)


def active_events(svc: Replica) -> list[dict[str, object]]:
    return [e["extra"] for e in svc.events() if e["message"] == "service.active"]


def test_a_service_sigkilled_and_restarted_publishes_at_once_not_after_its_lease(
    make: Make, content_repo: ContentRepo, x: XServer
) -> None:
    """The service holds the lease (60 s), is SIGKILLed, and a post falls due meanwhile.
    Started again (another pid of this host's pid namespace: the killed one is gone), it
    takes the lease at its first poll, with the next epoch, and publishes the post once on
    every account within 20 s of its start."""
    svc = make()
    svc.start()
    wait_for("the service to be active", lambda: svc.role == "active")
    first = svc.status()["instance"]
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGKILL)
    svc.proc.wait(10)
    due_post(content_repo, "redemarrage", "Redémarrage après un arrêt brutal")

    restarted = time.monotonic()
    svc.start()
    wait_for(
        "the post on every account",
        lambda: all(x.timeline(h) for h in HANDLES),
        timeout=LEASE + 10,
    )
    took = time.monotonic() - restarted
    assert took < QUICK, f"published {took:.1f} s after the restart: it waited for the lease"
    status = svc.status()
    assert status["role"] == "active"
    assert status["lease"]["epoch"] == 2 and status["lease"]["holder"] == status["instance"]
    assert_once_each(x, "Redémarrage")
    (taken,) = active_events(svc)[1:]  # the first run's own takeover (epoch 1), then this one
    assert taken["previous"] == first and taken["epoch"] == 2
    assert taken["dead"] == f"process {first.rpartition(':')[2]} on {os.uname().nodename} is gone"
    assert svc.stop() == 0
    assert x.errors == []


def test_a_restarted_container_as_pid_1_publishes_at_once_not_after_its_lease(
    make: Make, content_repo: ContentRepo, x: XServer
) -> None:
    """The same, the service being PID 1 of a new pid namespace at each start, as in a
    container: both lives are process 1 of this host; the new one knows the pid is its own."""
    need_pid_namespaces()
    svc = make()
    start_as_pid_1(svc)
    wait_for("the service to be active", lambda: svc.role == "active")
    first = svc.status()["instance"]
    assert first.endswith(":1") and svc.proc is not None
    kill_pid_1(svc.proc)
    due_post(content_repo, "conteneur", "Conteneur relancé")

    restarted = time.monotonic()
    start_as_pid_1(svc)
    wait_for(
        "the post on every account",
        lambda: all(x.timeline(h) for h in HANDLES),
        timeout=LEASE + 10,
    )
    took = time.monotonic() - restarted
    assert took < QUICK, f"published {took:.1f} s after the restart: it waited for the lease"
    assert svc.status()["lease"]["epoch"] == 2
    assert_once_each(x, "Conteneur")
    (taken,) = active_events(svc)[1:]
    assert taken["previous"] == first
    assert taken["dead"] == f"process 1 on {os.uname().nodename} is another start now"
    assert svc.proc is not None and stop_pid_1(svc.proc) == 0


def test_a_lease_held_by_a_live_replica_is_not_taken_early(
    make: Make, content_repo: ContentRepo, x: XServer
) -> None:
    """A holds the lease; B, a second replica on this host, stands by. A is frozen
    (SIGSTOP: its pid runs, it renews nothing) and B is SIGKILLed and started again: B's
    first poll finds a holder that may be alive, so B stays standby and publishes nothing,
    though a post is due. Resumed, A (its lease still valid) publishes it, once."""
    a, b = make(), make()
    a.start()
    wait_for("A to be active", lambda: a.role == "active")
    b.start()
    assert b.role == "standby"
    holder = a.status()["instance"]
    assert a.proc is not None and b.proc is not None
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(10)
        rev = due_post(content_repo, "attente", "Attente du titulaire")
        b.start()
        wait_for("B at the new revision", lambda: b.status()["revision"] == rev, timeout=30)
        time.sleep(3)  # B's sweeps: they would publish the post if B were active
        status = b.status()
        assert status["role"] == "standby"
        assert (status["lease"]["holder"], status["lease"]["epoch"]) == (holder, 1)
        assert all(x.timeline(h) == [] for h in HANDLES)
        assert active_events(b) == []
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    wait_for("A to publish", lambda: all(x.timeline(h) for h in HANDLES), timeout=30)
    assert_once_each(x, "Attente")
    assert list(tweets_by(x)) == [f"diplobot/0.1.0 ({os.uname().nodename}/{a.instance})"]
    assert b.role == "standby"
