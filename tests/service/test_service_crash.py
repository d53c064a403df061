"""``diplobot run`` killed with SIGKILL at random moments, restarted, publishes every delivery
exactly once (DESIGN.md invariants 1, 2 and 8; issue "never twice, never lost").

Each round is a fresh content repository under git, followed by the service as in production
(clone, fetch every second), with posts that fall due while the service is being killed: an
image post with alt texts (machine-translated where missing), a three-part machine-translated
thread, a human-translated post with a link, and — committed in the middle of the round — two
posts whose texts differ only by their link. Between runs, faults are queued on the fake X (the
media upload dropped or hung, a post stored but its answer late or cut) and on the translation
server (an outage of a few requests). Beside the four X accounts, a Mastodon account and a
Bluesky account, each behind its own fake server and reached through its own client library,
take every post in every round, with faults of their own (a status stored and its answer cut
or late, a record stored and the connection dropped, a 5xx). Some runs are started as PID 1 of
a new PID namespace (``unshare --pid``), as a restarted container is: the pid a killed run
wrote in its claims is the new run's own pid. After the round's kills, one run is let finish;
then every delivery must be POSTED once in the ledger and on its platform, threads must be reply
chains, alt texts in place.

``DIPLOBOT_SERVICE_CRASH_KILLS`` sets the number of kills (default 24, a CI-sized run; the
figures in docs/benchmarks.md come from runs of 300 and more), ``DIPLOBOT_CRASH_SEED`` the seed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from publish.conftest import ACCOUNTS, env_for
from publish.test_crash import KillBudget, LaggyX, laggy_x
from servers.bluesky import BlueskyServer
from servers.mastodon import MastodonServer
from servers.translate import LibreServer

from bot.envname import env_name

ROOT = Path(__file__).resolve().parents[2]
HANDLES = list(ACCOUNTS)  # the X accounts
# Beside the four X accounts, one account on Mastodon and one on Bluesky, each with its own
# fake server and its own client library, in every round.
MASTODON = ("masto_fr", "fr", "diplomatie_fr", "masto-fr-CANARY-aa11")
BLUESKY = ("bsky_en", "en", "francediplo-en.bsky.social", "bsky-en-CANARY-bb22")
ACCOUNT_COUNT = len(HANDLES) + 2
BRANCH = "desk"
KILLS = int(os.environ.get("DIPLOBOT_SERVICE_CRASH_KILLS") or 24)
LANES = 2  # rounds run side by side, each with its own repository, fake X and translator
X_TIMEOUT = 1.0
FINAL_TIMEOUT = 90.0  # the undisturbed run at the end of a round must finish within this


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", "echo $$"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return probe.returncode == 0 and probe.stdout.strip() == "1"


PID_NAMESPACES = _unshare_works()


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


def content_repo(path: Path, mastodon_url: str) -> Path:
    """The example's X accounts plus a Mastodon and a Bluesky account; its slots, glossary
    and media; no posts, no blackouts; under git."""
    for part in ("content", "schedules"):
        shutil.copytree(ROOT / part, path / part)
    shutil.rmtree(path / "content" / "posts")
    (path / "content" / "posts").mkdir()
    lines = ["timezone: Europe/Paris", "accounts:"]
    for account, (_token, _secret, handle) in ACCOUNTS.items():
        lang = {"francediplo": "fr"}.get(account, account.rsplit("_", 1)[-1].lower())
        lines.append(f"  {account}: {{lang: {lang}, platform: x, handle: {handle}}}")
    account, lang, handle, _token = MASTODON
    lines.append(
        f"  {account}: {{lang: {lang}, platform: mastodon, handle: {handle}, "
        f"instance: '{mastodon_url}'}}"
    )
    account, lang, handle, _password = BLUESKY
    lines.append(f"  {account}: {{lang: {lang}, platform: bluesky, handle: {handle}}}")
    (path / "schedules" / "accounts.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (path / "content" / "posts" / ".gitkeep").write_text("")
    slots = path / "schedules" / "slots.yaml"
    lines, skipping = [], False
    for line in slots.read_text(encoding="utf-8").splitlines():
        if line.startswith("blackouts:"):
            lines.append("blackouts: []")
            skipping = True
        elif skipping and line.startswith(" "):
            continue
        else:
            skipping = False
            lines.append(line)
    slots.write_text("\n".join(lines) + "\n", encoding="utf-8")
    subprocess.run(["git", "init", "-q", "-b", BRANCH, str(path)], check=True, timeout=30)
    git(path, "config", "user.email", "desk@example.org")
    git(path, "config", "user.name", "Desk")
    commit(path, "accounts, slots, glossary, media")
    return path


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "-q", "-m", message)


def at(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def first_batch(repo: Path, tag: str, due: datetime) -> int:
    """Three posts due from ``due`` on, 4 s apart; returns their deliveries (every account:
    the four X accounts, Mastodon's in French, Bluesky's in English)."""
    posts = repo / "content" / "posts"
    (posts / f"{tag}-image.yaml").write_text(
        f"id: {tag}-image\nlang: fr\npublish_at: {at(due)}\n"
        f'text: "Journée {tag} : la France soutient les défenseurs des droits. #DroitsHumains"\n'
        "media:\n  - file: media/drapeau.png\n    alt:\n"
        f'      fr: "Drapeau français {tag}"\n      en: "French flag {tag}"\n',
        encoding="utf-8",
    )
    (posts / f"{tag}-thread.yaml").write_text(
        f"id: {tag}-thread\nlang: fr\npublish_at: {at(due + timedelta(seconds=8))}\n"
        f'text: "Conférence {tag} pour le Soudan : la France réunit ses partenaires. 1/3"\n'
        "thread:\n"
        f'  - text: "Plus de 12 millions de personnes déplacées ({tag}). 2/3"\n'
        f'  - text: "Suivez la conférence {tag} : https://www.diplomatie.gouv.fr/fr/ 3/3"\n',
        encoding="utf-8",
    )
    (posts / f"{tag}-human.yaml").write_text(
        f"id: {tag}-human\nlang: fr\npublish_at: {at(due + timedelta(seconds=4))}\n"
        f'text: "Entretien {tag} & échange <franc> : https://example.org/{tag}?a=1&b=2"\n'
        "translations:\n"
        f'  en: "Talks {tag} & a <frank> exchange: https://example.org/{tag}?a=1&b=2"\n'
        f'  ar: "محادثات {tag} https://example.org/{tag}?a=1&b=2"\n'
        f'  es: "Conversaciones {tag} & intercambio: https://example.org/{tag}?a=1&b=2"\n',
        encoding="utf-8",
    )
    commit(repo, f"{tag}: first batch")
    return ACCOUNT_COUNT * (1 + 3 + 1)


def second_batch(repo: Path, tag: str, due: datetime) -> int:
    """Two posts whose texts differ only by their link (reconciliation must tell them apart)."""
    posts = repo / "content" / "posts"
    for n, path in ((1, "fr/a"), (2, "fr/b")):
        translations = "".join(
            f'  {lang}: "Communiqué {tag} ({lang}) https://www.diplomatie.gouv.fr/{path}"\n'
            for lang in ("en", "ar", "es")
        )
        (posts / f"{tag}-link{n}.yaml").write_text(
            f"id: {tag}-link{n}\nlang: fr\npublish_at: {at(due + timedelta(seconds=3 * n))}\n"
            f'text: "Communiqué {tag} https://www.diplomatie.gouv.fr/{path}"\n'
            f"translations:\n{translations}",
            encoding="utf-8",
        )
    commit(repo, f"{tag}: second batch")
    return ACCOUNT_COUNT * 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def processes_of(marker: str) -> list[int]:
    """Pids of live processes whose command line contains ``marker`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmdline and stat.rpartition(")")[2].split()[0] != "Z":
            found.append(int(entry.name))
    return found


@dataclass
class Others:
    """The round's platforms beside X: a fake Mastodon instance and a fake Bluesky PDS."""

    mastodon: MastodonServer
    bluesky: BlueskyServer

    def reset(self) -> None:
        self.mastodon.reset()
        self.bluesky.reset()


@dataclass
class Lane:
    """One round's world: a content repository, the service's state folder, a fake X."""

    seed: int
    number: int
    tmp: Path
    libre: LibreServer
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:{self.number}")

    def environment(self, x: LaggyX, others: Others, repo: Path, port: int) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DIPLOBOT_")}
        return {
            **inherited,
            f"DIPLOBOT_{env_name(MASTODON[0])}_ACCESS_TOKEN": MASTODON[3],
            "DIPLOBOT_MASTODON_TIMEOUT": str(X_TIMEOUT),
            f"DIPLOBOT_{env_name(BLUESKY[0])}_APP_PASSWORD": BLUESKY[3],
            "DIPLOBOT_BLUESKY_PDS_URL": others.bluesky.url,
            "DIPLOBOT_BLUESKY_TIMEOUT": str(X_TIMEOUT),
            **env_for(
                x,
                self.libre,
                DIPLOBOT_REPO_URL=str(repo),
                DIPLOBOT_REPO_BRANCH=BRANCH,
                DIPLOBOT_SYNC_INTERVAL="1",
                DIPLOBOT_SWEEP_INTERVAL="0.5",
                DIPLOBOT_MAX_LATE="1h",
                DIPLOBOT_X_TIMEOUT=str(X_TIMEOUT),
                DIPLOBOT_TRANSLATOR_TIMEOUT="2",
                DIPLOBOT_LOG_FORMAT="json",
                DIPLOBOT_LOG_LEVEL="INFO",
                DIPLOBOT_HTTP_ADDR=f"127.0.0.1:{port}",
            ),
        }


def launch(
    state: Path, env: dict[str, str], log: Path, pid_namespace: bool
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bot", "--root", str(state), "--state"]
    command += [str(state / "state.sqlite"), "run"]
    if pid_namespace:
        command = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *command]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, cwd=state, stdout=out, stderr=out)


def kill(proc: subprocess.Popen[bytes], state: Path) -> None:
    """SIGKILL, and wait until no process of this state folder is left (the namespaced
    service dies with its ``unshare`` parent, a moment later)."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while processes_of(str(state / "state.sqlite")):
        assert time.monotonic() < deadline, "a killed service is still running"
        time.sleep(0.02)


def rows_of(state: Path) -> list[dict[str, Any]]:
    db = state / "state.sqlite"
    if not db.exists():
        return []
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM deliveries")]
        except sqlite3.OperationalError:
            return []


@dataclass
class Tally:
    kills: Counter[str] = field(default_factory=Counter)
    in_namespace: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    rounds: int = 0
    deliveries: int = 0


def inject(lane: Lane, x: LaggyX, others: Others, tally: Tally) -> None:
    """Queue this run's faults: each kind now and then."""
    rng = lane.rng
    if rng.random() < 0.2:
        kind = rng.choice(["drop_after_store", "503", "slow"])
        others.mastodon.fail_next(
            kind, method="POST", path="/api/v1/statuses", seconds=X_TIMEOUT + 0.5
        )
        tally.faults[f"mastodon status {kind}"] += 1
    if rng.random() < 0.2:
        kind = rng.choice(["drop_after_store", "500"])
        others.bluesky.fail_next(kind, nsid="com.atproto.repo.createRecord")
        tally.faults[f"bluesky record {kind}"] += 1
    if rng.random() < 0.3:
        lane.libre.fail_next("500", count=rng.randint(1, 8))
        tally.faults["translation outage"] += 1
    if rng.random() < 0.25:
        kind = rng.choice(["drop_before_store", "slow", "500"])
        x.fail_next(kind, method="POST", path="/2/media/upload*", seconds=X_TIMEOUT + 0.5)
        tally.faults[f"media upload {kind}"] += 1
    if rng.random() < 0.2:
        x.fail_next("slow", method="POST", path="/2/tweets", seconds=X_TIMEOUT + 0.4)
        tally.faults["post stored, answer after the timeout"] += 1
    if rng.random() < 0.15:
        x.fail_next("drop_after_store", method="POST", path="/2/tweets")
        tally.faults["post stored, connection cut"] += 1
    if rng.random() < 0.1:
        x.fail_next("503", method="POST", path="/2/tweets")
        tally.faults["503"] += 1


def verify(rows: list[dict[str, Any]], x: LaggyX, others: Others, expected: int, where: str) -> int:
    """Every delivery POSTED once, in the ledger and on its platform, threads chained, alt
    texts set."""
    assert len(rows) == expected, f"{where}: {len(rows)} deliveries recorded, {expected} due"
    not_posted = [
        (r["post_id"], r["account"], r["part"], r["state"], r["last_error"]) for r in rows
    ]
    not_posted = [r for r in not_posted if r[3] != "POSTED"]
    assert not_posted == [], f"{where}: not POSTED: {not_posted}"
    tweets: dict[str, dict[str, Any]] = {}
    rows_on_x = [r for r in rows if r["account"] in HANDLES]
    for account in HANDLES:
        timeline = x.timeline(account)
        counts = Counter(t["text"] for t in timeline)
        twice = {text[:50]: n for text, n in counts.items() if n > 1}
        assert twice == {}, f"{where}: published more than once on {account}: {twice}"
        wanted = sorted(r["text"] for r in rows if r["account"] == account)
        assert sorted(counts) == wanted, f"{where}: {account}'s timeline is not the ledger's"
        tweets.update((t["id"], t) for t in timeline)
    ids = {(r["post_id"], r["account"], r["part"]): r["remote_id"] for r in rows}
    for r in rows_on_x:
        tweet = tweets[r["remote_id"]]
        assert (tweet["account"], tweet["text"]) == (r["account"], r["text"]), where
        parent = ids.get((r["post_id"], r["account"], r["part"] - 1))
        assert tweet["reply_to"] == parent, f"{where}: thread broken at {r['post_id']}"
        alts = [m["alt"] for m in json.loads(r["media"])]
        assert [m["alt_text"] for m in tweet["media"]] == alts, where
    assert x.errors == [], f"{where}: {x.errors}"
    verify_elsewhere(rows, others, where)
    return len(rows)


def verify_elsewhere(rows: list[dict[str, Any]], others: Others, where: str) -> None:
    """The Mastodon and Bluesky accounts: each delivery there once, as the ledger says,
    threads chained, alt texts set."""
    ids = {(r["post_id"], r["account"], r["part"]): r["remote_id"] for r in rows}
    mastodon = {
        s["id"]: (s["text"], s["reply_to"], [m["description"] or None for m in s["media"]])
        for s in others.mastodon.statuses(MASTODON[0])
    }
    bluesky = {
        p["uri"]: (
            p["text"],
            (p["reply"] or {}).get("parent"),
            [i["alt"] or None for i in p["images"]],
        )
        for p in others.bluesky.posts(BLUESKY[0])
    }
    for account, found in ((MASTODON[0], mastodon), (BLUESKY[0], bluesky)):
        mine = [r for r in rows if r["account"] == account]
        counts = Counter(text for text, _reply, _alts in found.values())
        twice = {text[:50]: n for text, n in counts.items() if n > 1}
        assert twice == {}, f"{where}: published more than once on {account}: {twice}"
        assert sorted(counts) == sorted(r["text"] for r in mine), f"{where}: {account}"
        for r in mine:
            text, reply_to, alts = found[r["remote_id"]]
            assert text == r["text"], where
            parent = ids.get((r["post_id"], r["account"], r["part"] - 1))
            assert reply_to == parent, f"{where}: thread broken at {r['post_id']} on {account}"
            assert alts == [m["alt"] for m in json.loads(r["media"])], where
    assert others.mastodon.errors == [] and others.bluesky.errors == [], where


def run_lane(lane: Lane, budget: KillBudget) -> Tally:
    tally = Tally()
    rng = lane.rng
    while budget.left:
        tally.rounds += 1
        tag = f"l{lane.number}r{tally.rounds}"
        base = lane.tmp / tag
        with (
            laggy_x(before=0.02, after=0.1) as x,
            MastodonServer(accounts={MASTODON[0]: (MASTODON[3], MASTODON[2])}) as mastodon,
            BlueskyServer(accounts={BLUESKY[0]: (BLUESKY[2], BLUESKY[3])}) as bluesky,
        ):
            others = Others(mastodon, bluesky)
            repo = content_repo(base / "desk", mastodon.url)
            state = base / "state"
            state.mkdir()
            log = base / "service.log"
            expected = first_batch(repo, tag, datetime.now(UTC) + timedelta(seconds=4))
            kills = rng.randint(6, 12)
            for k in range(kills):
                if not budget.left:
                    break
                if k == kills // 2:
                    expected += second_batch(repo, tag, datetime.now(UTC) + timedelta(seconds=3))
                inject(lane, x, others, tally)
                wait_out_backoff_state(state)
                namespaced = PID_NAMESPACES and rng.random() < 0.4
                env = lane.environment(x, others, repo, free_port())
                proc = launch(state, env, log, namespaced)
                x.mark()
                launched = time.monotonic()
                # A quarter of the kills land during start-up (imports, clone or fetch,
                # validation, recovery, translation); the rest while it talks to X: within
                # 0.6 s of this run's first request (when nothing is due for 6 s, then).
                if rng.random() < 0.25:
                    moment = rng.uniform(0.2, 1.5)
                else:
                    while x.first_request_at is None and proc.poll() is None:
                        if time.monotonic() - launched > 6:
                            break
                        time.sleep(0.005)
                    moment = time.monotonic() - launched + rng.uniform(0, 0.6)
                try:
                    proc.wait(timeout=max(0.0, moment - (time.monotonic() - launched)))
                    pytest.fail(f"{tag}: the service exited by itself:\n{tail(log)}")
                except subprocess.TimeoutExpired:
                    pass
                tally.kills[x.where()] += 1
                tally.in_namespace += namespaced
                kill(proc, state)
                budget.spend()
            # One undisturbed run finishes the round.
            x.reset()
            others.reset()
            lane.libre.reset()
            x.wait_idle()
            wait_out_backoff_state(state)
            env = lane.environment(x, others, repo, free_port())
            proc = launch(state, env, log, PID_NAMESPACES and rng.random() < 0.5)
            try:
                deadline = time.monotonic() + FINAL_TIMEOUT
                while True:
                    rows = rows_of(state)
                    done = len(rows) == expected and all(r["state"] == "POSTED" for r in rows)
                    if done:
                        break
                    wait_out_backoff_state(state)  # time passes faster in the last run
                    if time.monotonic() > deadline:
                        pending = [
                            (r["post_id"], r["account"], r["part"], r["state"], r["last_error"])
                            for r in rows
                            if r["state"] != "POSTED"
                        ]
                        pytest.fail(
                            f"seed {lane.seed}, {tag}: {len(rows)}/{expected} recorded, not "
                            f"POSTED after {FINAL_TIMEOUT:.0f} s: {pending}\n{tail(log)}"
                        )
                    time.sleep(0.2)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    kill(proc, state)
            x.wait_idle()
            where = f"seed {lane.seed}, {tag} ({base})"
            tally.deliveries += verify(rows_of(state), x, others, expected, where)
            text = log.read_text(encoding="utf-8", errors="replace")
            assert "Traceback" not in text, f"{where}: a traceback in the service's log"
    return tally


def wait_out_backoff_state(state: Path) -> int:
    """Let time pass between two runs: PENDING rows whose ``retry_at`` is still ahead become
    due now, as if the operator had waited out the back-off (1, 2, 4… minutes) before the
    restart. The only write to the ledger from outside; no service runs at that moment."""
    db = state / "state.sqlite"
    if not db.exists():
        return 0
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="microseconds")
    with closing(sqlite3.connect(db, timeout=30)) as conn, conn:
        try:
            cursor = conn.execute(
                "UPDATE deliveries SET retry_at = ? WHERE state IN ('PENDING', 'UNKNOWN') "
                "AND retry_at > ?",
                (past, past),
            )
        except sqlite3.OperationalError:
            return 0
        return cursor.rowcount


def tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-4000:] if log.exists() else ""


@pytest.mark.slow
def test_service_killed_at_random_moments_publishes_every_delivery_exactly_once(
    tmp_path: Path,
) -> None:
    """SIGKILL of `diplobot run` at random moments, with git sync, faults and PID reuse."""
    seed = int(os.environ.get("DIPLOBOT_CRASH_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\nservice crash test seed {seed} (DIPLOBOT_CRASH_SEED={seed} repeats its choices)")
    started = time.monotonic()
    budget = KillBudget(KILLS)
    with LibreServer() as libre_a, LibreServer() as libre_b:
        translators = [libre_a, libre_b]
        with ThreadPoolExecutor(LANES) as pool:
            lanes = [
                pool.submit(run_lane, Lane(seed, n, tmp_path / f"lane{n}", translators[n]), budget)
                for n in range(LANES)
            ]
            tallies = [f.result() for f in lanes]
    elapsed = time.monotonic() - started
    kills: Counter[str] = sum((t.kills for t in tallies), Counter())
    faults: Counter[str] = sum((t.faults for t in tallies), Counter())
    total = sum(kills.values())
    namespaced = sum(t.in_namespace for t in tallies)
    assert total >= KILLS
    # Kills land while the service talks to X, not only before it does (about 60 % of them).
    assert kills["request being handled by X"] > 0, kills
    if PID_NAMESPACES:
        assert namespaced > 0
    print(
        f"service crash test: {total} SIGKILLs of `diplobot run` "
        f"({', '.join(f'{n} {w}' for w, n in kills.most_common())}); "
        f"{namespaced} runs as PID 1 of a new PID namespace"
        f"{'' if PID_NAMESPACES else ' (unshare not permitted here)'}; faults queued: "
        f"{', '.join(f'{n} {w}' for w, n in faults.most_common())}; "
        f"{sum(t.rounds for t in tallies)} rounds, {sum(t.deliveries for t in tallies)} "
        f"deliveries each POSTED and on its platform exactly once, 0 duplicates, 0 lost; "
        f"{LANES} lanes, seed {seed}, {elapsed:.1f} s"
    )
