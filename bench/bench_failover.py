"""Failover time: the active ``diplobot run`` replica SIGKILLed → the first post by the standby.

Run:  .venv/bin/python bench/bench_failover.py                     # 20 trials, PostgreSQL
      .venv/bin/python bench/bench_failover.py --trials 30 --lease 15 --state sqlite
      .venv/bin/python bench/bench_failover.py --hosts same           # both on this host

With ``--hosts distinct`` (the default; needs root) each replica runs with a host name of its
own (``unshare --uts``), as replicas on two machines: the standby cannot tell the active one is
dead and takes over when its lease runs out. With ``--hosts same`` the standby sees the
holder's process gone on its own host and takes the lease at its next poll.

Two real ``diplobot run`` processes follow one content repository under git (the example's
four X accounts) and share one state database: a throwaway PostgreSQL server started here
(``tests/servers/postgres.py``), or one SQLite file. The fake X of the test suite (OAuth and
OpenAPI checks on) runs in this process and records each post's User-Agent, which names the
replica that sent it. Each trial commits a post (four deliveries) due one second after the
kill, waits until both replicas run that revision, SIGKILLs the active one at a random phase
of its lease renewals, and measures the time from the kill to the first post of that trial on
X, checking it came from the other replica. The killed one is started again as the standby
of the next trial. Prints each trial, then min, median and max, and the bound the docs state
(lease + one poll of a third of it, plus the takeover's apply and first sweep).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "tests")]

from example import keep_platforms  # noqa: E402
from publish.conftest import ACCOUNTS, APP, env_for  # noqa: E402
from servers.postgres import PostgresServer, find_bindir  # noqa: E402
from servers.translate import LibreServer  # noqa: E402
from servers.x import XServer  # noqa: E402

BRANCH = "desk"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr)
    return done.stdout.strip()


def content_repo(path: Path) -> Path:
    for part in ("content", "schedules"):
        shutil.copytree(HERE / part, path / part)
    keep_platforms(path, {"x"})
    shutil.rmtree(path / "content" / "posts")
    (path / "content" / "posts").mkdir()
    (path / "content" / "posts" / ".gitkeep").write_text("")
    slots = path / "schedules" / "slots.yaml"
    slots.write_text(
        re.sub(r"\nblackouts:\n(?: .*\n)*", "\nblackouts: []\n", slots.read_text()),
        encoding="utf-8",
    )
    subprocess.run(["git", "init", "-q", "-b", BRANCH, str(path)], check=True)
    git(path, "config", "user.email", "desk@example.org")
    git(path, "config", "user.name", "Desk")
    git(path, "add", "--all")
    git(path, "commit", "-q", "-m", "accounts")
    return path


def post(repo: Path, name: str, due: datetime) -> str:
    text = f"Communiqué {name} : la France salue l'accord."
    lines = [f"id: {name}", "lang: fr", f"publish_at: {due.isoformat(timespec='seconds')}"]
    lines += [f"text: {json.dumps(text, ensure_ascii=False)}", "translations:"]
    lines += [f'  {lang}: "{text} [{lang}]"' for lang in ("en", "ar", "es")]
    (repo / "content" / "posts" / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    git(repo, "add", "--all")
    git(repo, "commit", "-q", "-m", name)
    return git(repo, "rev-parse", "HEAD")


class Replica:
    def __init__(
        self, folder: Path, state: str, env: dict[str, str], host: str | None = None
    ) -> None:
        self.folder, self.state, self.env, self.host = folder, state, env, host
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        if state.startswith("sqlite:///"):  # its own folder, a link to the shared file
            (folder / "state.sqlite").symlink_to(Path(state[len("sqlite:///") :]))
            self.state = f"sqlite:///{folder / 'state.sqlite'}"

    def start(self) -> None:
        env = {**self.env, "DIPLOBOT_HTTP_ADDR": f"127.0.0.1:{self.port}"}
        command = [sys.executable, "-m", "bot", "--root", str(self.folder)]
        command += ["--state", self.state, "run"]
        if self.host:
            # A host name of its own (a UTS namespace; root only), as on two machines: the
            # standby cannot see that the active one's process is gone and waits out its lease.
            script = f'hostname {self.host} && exec "$@"'
            command = ["unshare", "--uts", "sh", "-c", script, "sh", *command]
        with (self.folder / "service.log").open("ab") as out:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=out)

    def status(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=5) as r:
                found: dict[str, Any] = json.loads(r.read())
                return found
        except OSError:
            return None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def run(trials: int, lease: float, kind: str, distinct: bool) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    server = None
    if kind == "postgresql":
        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("no PostgreSQL server binaries: install Debian's postgresql")
        server = PostgresServer(bindir).start()
        state = server.url(server.create_database())
    else:
        (tmp / "shared").mkdir()
        state = f"sqlite:///{tmp / 'shared' / 'state.sqlite'}"
    repo = content_repo(tmp / "desk")
    figures: list[float] = []
    rng = random.Random(12)
    with XServer(accounts=ACCOUNTS, consumer=APP) as x, LibreServer() as libre:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DIPLOBOT_")}
        env = {
            **inherited,
            **env_for(
                x,
                libre,
                DIPLOBOT_REPO_URL=str(repo),
                DIPLOBOT_REPO_BRANCH=BRANCH,
                DIPLOBOT_SYNC_INTERVAL="1",
                DIPLOBOT_ACTIVE_LEASE=str(lease),
                DIPLOBOT_LOG_FORMAT="json",
                DIPLOBOT_LOG_LEVEL="INFO",
            ),
        }
        replicas = [
            Replica(tmp / f"replica-{n}", state, env, f"replica-{n}" if distinct else None)
            for n in range(2)
        ]
        try:
            for replica in replicas:
                replica.start()
                wait("a replica to start", replica.status)
            for n in range(trials):

                def roles() -> tuple[Replica, Replica] | None:
                    found = {r: (r.status() or {}).get("role") for r in replicas}
                    active = [r for r, role in found.items() if role == "active"]
                    standby = [r for r, role in found.items() if role == "standby"]
                    return (active[0], standby[0]) if active and standby else None

                active, standby = wait("one active, one standby", roles, timeout=lease * 3)
                name = f"trial-{n}"
                due = datetime.now(UTC) + timedelta(seconds=5 + lease / 3)
                rev = post(repo, name, due)
                wait(
                    "both replicas at the new revision",
                    lambda rev=rev: all(
                        (r.status() or {}).get("revision") == rev for r in replicas
                    ),
                )
                other = str((standby.status() or {})["instance"]).partition("@")[0]
                # Kill before the post is due, at a random phase of the lease's renewals.
                time.sleep(rng.uniform(0, lease / 3))
                if (due - datetime.now(UTC)).total_seconds() < 0.5:
                    raise SystemExit("the machine is too slow for this trial: the post was due")
                killed = time.time()
                active.kill()

                def first_post(name: str = name, other: str = other) -> float | None:
                    mine = [
                        t
                        for h in ACCOUNTS
                        for t in x.timeline(h)
                        if t["text"].startswith(f"Communiqué {name} ")
                    ]
                    if not mine:
                        return None
                    first = min(mine, key=lambda t: t["created_at"])
                    assert other in (first["user_agent"] or ""), first["user_agent"]
                    created: datetime = first["created_at"]
                    return created.timestamp()

                posted = wait("the standby's first post", first_post, timeout=lease * 4 + 30)
                figures.append(posted - killed)
                print(f"trial {n + 1:2d}: first post by the standby {posted - killed:6.2f} s")
                active.start()  # the new standby
                wait("the killed replica to be back", active.status)
            twice = [
                t["text"]
                for h in ACCOUNTS
                for t in x.timeline(h)
                if sum(1 for u in x.timeline(h) if u["text"] == t["text"]) > 1
            ]
            assert not twice, twice
        finally:
            for replica in replicas:
                replica.stop()
            if server is not None:
                server.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--lease", type=float, default=15.0, help="DIPLOBOT_ACTIVE_LEASE, s")
    parser.add_argument("--state", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument(
        "--hosts",
        choices=["distinct", "same"],
        default="distinct",
        help="distinct: each replica with a host name of its own, as on two machines (the "
        "standby waits out the lease); same: both on this host, where the standby sees the "
        "active one's process gone and takes over at its next poll",
    )
    args = parser.parse_args()
    figures = run(args.trials, args.lease, args.state, args.hosts == "distinct")
    bound = args.lease + args.lease / 3
    median = statistics.median(figures)
    print(
        f"failover ({args.state}, {args.hosts} hosts, DIPLOBOT_ACTIVE_LEASE={args.lease:g} s, "
        f"{len(figures)} trials): min {min(figures):.2f} s, median {median:.2f} s, max "
        f"{max(figures):.2f} s (documented bound: lease + one poll = {bound:.1f} s, plus the "
        "takeover's apply and first sweep); no post published twice"
    )


if __name__ == "__main__":
    main()
