"""Crash safety through the real CLI in a subprocess (invariants 1 and 6 of DESIGN.md).

``post-now`` killed with SIGKILL at random moments and restarted publishes every delivery exactly
once; two ``post-now`` started at once publish each part once; DEBUG logs, the outbox and the
state database hold no secret. The fake X and LibreTranslate run in this process, on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from example import keep_platforms
from publish.conftest import ACCOUNTS, APP, ROOT, SECRETS, env_for
from servers.translate import FakeTranslationServer, LibreServer
from servers.x import XServer

HANDLES = list(ACCOUNTS)
POSTS = ("conference-soudan", "journee-droits-humains", "entretien-liban", "bilan-cop31")
"""The crash workload, 24 deliveries on four accounts: a 3-part thread (machine-translated), an
image with alt text, human translations, machine translations."""
KILLS = 50
LANES = 3  # independent repositories and fake X servers killed side by side
FINAL_RUNS = 10  # per round: post-now runs without a kill allowed to finish a round
X_TIMEOUT = 1.0  # the CLI's timeout for X; a "slow" answer beyond it is an ambiguous outcome
Expected = dict[tuple[str, str, int], str]  # (post, account, part) → text


class LaggyX(XServer):
    """The fake X, slowed down so that a kill can land anywhere: each request waits ``before``
    seconds before X acts on it, and ``after`` seconds between acting (a post is stored) and
    answering. It also tells where the client was when a kill landed (:meth:`where`)."""

    def __init__(self, *, before: float, after: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.before, self.after = before, after
        self.first_request_at: float | None = None
        self._count = threading.Lock()
        self._served = self._mark = self._in_flight = self._unanswered = 0

    def _serve(self, handler: Any) -> None:
        with self._count:
            self._served += 1
            self._in_flight += 1
            if self.first_request_at is None:
                self.first_request_at = time.monotonic()
        try:
            if not self._stopping.wait(self.before):
                super()._serve(handler)
        finally:
            with self._count:
                self._in_flight -= 1

    def _write(self, handler: Any, response: Any) -> None:  # type: ignore[override]
        stored = handler.command == "POST" and response.status == 201
        with self._count:
            self._unanswered += stored
        try:
            if not self._stopping.wait(self.after):
                FakeTranslationServer._write(handler, response)
        finally:
            with self._count:
                self._unanswered -= stored

    def mark(self) -> None:
        """A new client run starts now."""
        with self._count:
            self._mark, self.first_request_at = self._served, None

    def where(self) -> str:
        """Where the current client run is, as seen from X."""
        with self._count:
            if self._unanswered:
                return "post stored at X, answer not received"
            if self._in_flight:
                return "request being handled by X"
            if self._served == self._mark:
                return "before any request to X"
            return "between requests to X"

    def wait_idle(self, timeout: float = 15.0) -> None:
        """Until requests of killed clients (X still handles them) are done."""
        deadline = time.monotonic() + timeout
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not self._in_flight, "the fake X is still busy"


def laggy_x(before: float = 0.03, after: float = 0.05) -> LaggyX:
    """X's refusal of a duplicate text is off: a second send would be a second post, so only
    the ledger and reconciliation stand between a crash and a duplicate."""
    return LaggyX(before=before, after=after, accounts=ACCOUNTS, consumer=APP, duplicate_window=0)


def environment(x: XServer, libre: LibreServer, **extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DIPLOBOT_")}
    return {**inherited, **env_for(x, libre, **extra)}


def copy_repo(dest: Path) -> Path:
    for part in ("content", "schedules"):
        shutil.copytree(ROOT / part, dest / part)
    return keep_platforms(dest, {"x"})  # the accounts the fake X knows


def command(repo: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "bot", "--root", str(repo), *args]


def run(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(repo, *args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def status(repo: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """``diplobot status --format json``: the ledger as a user sees it."""
    done = run(repo, env, "status", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def ledger_states(repo: Path) -> dict[tuple[str, str, int], str]:
    """The ledger read directly (cheaper than a CLI run), between two runs only."""
    db = repo / ".diplobot" / "state.sqlite"
    if not db.exists():
        return {}
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        try:
            found = conn.execute("SELECT post_id, account, part, state FROM deliveries")
            return {(p, a, n): s for p, a, n, s in found}
        except sqlite3.OperationalError:  # killed before the table was created
            return {}


def wait_out_backoff(repo: Path) -> int:
    """Let time pass: PENDING rows whose ``retry_at`` is still ahead become due now, as if the
    operator had waited out the back-off (1, 2, 4… minutes) before restarting. Returns how
    many rows were waiting."""
    db = repo / ".diplobot" / "state.sqlite"
    if not db.exists():
        return 0
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="microseconds")
    with closing(sqlite3.connect(db, timeout=30)) as conn, conn:
        try:
            cursor = conn.execute(
                "UPDATE deliveries SET retry_at = ? WHERE state = 'PENDING' AND retry_at > ?",
                (past, past),
            )
        except sqlite3.OperationalError:
            return 0
        return cursor.rowcount


def unfinished(repo: Path, expected: Expected, seed: int) -> str | None:
    """The first post of the workload not yet POSTED everywhere; a FAILED row fails the test."""
    states = ledger_states(repo)
    failed = {k: s for k, s in states.items() if s == "FAILED"}
    assert not failed, f"seed {seed}: deliveries lost (FAILED) in {repo}: {failed}"
    for post in POSTS:
        keys = [k for k in expected if k[0] == post]
        if any(states.get(k) != "POSTED" for k in keys):
            return post
    return None


def verify(
    rows: list[dict[str, Any]], x: XServer, expected: Expected, seed: int, repo: Path
) -> int:
    """Every expected delivery is on its account's timeline exactly once, threads are reply
    chains, the ledger (``rows``, from ``status``) shows every row POSTED with the id X gave.
    Returns the number of deliveries."""
    where = f"seed {seed}, {repo}"
    not_posted = [(r["post_id"], r["account"], r["part"], r["state"]) for r in rows]
    not_posted = [r for r in not_posted if r[3] != "POSTED"]
    assert not_posted == [], f"{where}: not POSTED: {not_posted}"
    recorded = {(r["post_id"], r["account"], r["part"]): r["text"] for r in rows}
    assert recorded == expected, f"{where}: the ledger's deliveries differ from a clean run's"
    tweets: dict[str, dict[str, Any]] = {}
    for account in HANDLES:
        timeline = x.timeline(account)
        counts = Counter(t["text"] for t in timeline)
        twice = {text[:40]: n for text, n in counts.items() if n > 1}
        assert twice == {}, f"{where}: posted more than once on {account}: {twice}"
        wanted = sorted(text for (_, a, _), text in expected.items() if a == account)
        assert sorted(counts) == wanted, f"{where}: {account}'s timeline is not the workload"
        tweets.update((t["id"], t) for t in timeline)
    ids = {(r["post_id"], r["account"], r["part"]): r["remote_id"] for r in rows}
    for r in rows:
        tweet = tweets[r["remote_id"]]
        assert (tweet["account"], tweet["text"]) == (r["account"], r["text"]), where
        parent = ids.get((r["post_id"], r["account"], r["part"] - 1))
        assert tweet["reply_to"] == parent, f"{where}: thread broken at {r['post_id']} {r}"
        assert [m["alt_text"] for m in tweet["media"]] == [m["alt"] for m in r["media"]], where
    assert x.errors == [], f"{where}: {x.errors}"
    return len(rows)


# --------------------------------------------------------------------------------------------
# 1. Killed at random moments, restarted: every delivery exactly once
# --------------------------------------------------------------------------------------------


@dataclass
class Reference:
    """An undisturbed run of the workload: what it publishes, and how long each post takes."""

    expected: Expected
    first_request: dict[str, float]  # post → seconds from launch to the first request to X
    total: dict[str, float]  # post → seconds of the whole run


@dataclass
class Tally:
    kills: Counter[str] = field(default_factory=Counter)
    finished: int = 0  # runs that ended on their own (not killed)
    final: int = 0  # runs of the closing phase of a round
    timeouts: int = 0  # ambiguous outcomes: X answered after the client's timeout
    waited_out: int = 0  # back-offs waited out (rows put back PENDING by reconciliation)
    rounds: int = 0
    deliveries: int = 0


class KillBudget:
    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self._lock = threading.Lock()

    def spend(self) -> None:
        with self._lock:
            self.done += 1

    @property
    def left(self) -> bool:
        with self._lock:
            return self.done < self.total


def reference_run(tmp: Path, libre: LibreServer, posts: tuple[str, ...], seed: int) -> Reference:
    """``post-now`` of ``posts``, undisturbed: what they publish and how long each run takes."""
    repo = copy_repo(tmp)
    first: dict[str, float] = {}
    total: dict[str, float] = {}
    with laggy_x() as x:
        env = environment(x, libre, DIPLOBOT_X_TIMEOUT=str(X_TIMEOUT))
        for post in posts:
            x.mark()
            start = time.monotonic()
            done = run(repo, env, "post-now", post)
            total[post] = time.monotonic() - start
            assert done.returncode == 0, done.stdout + done.stderr
            assert x.first_request_at is not None
            first[post] = x.first_request_at - start
        rows = status(repo, env)
        expected = {(r["post_id"], r["account"], r["part"]): r["text"] for r in rows}
        verify(rows, x, expected, seed, repo)
    return Reference(expected, first, total)


def crash_lane(
    lane: int, seed: int, tmp: Path, libre: LibreServer, ref: Reference, budget: KillBudget
) -> Tally:
    """Rounds of the workload on a fresh repository and a fresh fake X, each killed over and
    over until it is done, then verified; until the shared budget of kills is spent."""
    rng = random.Random(f"{seed}:{lane}")
    tally = Tally()
    while budget.left:
        tally.rounds += 1
        repo = copy_repo(tmp / f"round{tally.rounds}")
        with laggy_x() as x:
            env = environment(x, libre, DIPLOBOT_X_TIMEOUT=str(X_TIMEOUT))
            timed_out = False
            while budget.left and (post := unfinished(repo, ref.expected, seed)) is not None:
                tally.waited_out += wait_out_backoff(repo)
                if rng.random() < 0.1:  # now and then a run is let finish...
                    if not timed_out:  # ...once per round through an X timeout (ambiguous)
                        late = X_TIMEOUT + 0.3
                        x.fail_next("slow", method="POST", path="/2/tweets", seconds=late)
                        timed_out = True
                    done = run(repo, env, "post-now", post)
                    assert done.returncode in (0, 1), f"seed {seed}: {done.stderr}"
                    assert "Traceback" not in done.stderr, f"seed {seed}: {done.stderr}"
                    tally.finished += 1
                    continue
                # Kills land across the whole run: a fifth during start-up (imports, content,
                # ledger, recovery, translation), the rest while it publishes: after this run's
                # first request to X, within the time a whole undisturbed run took to publish.
                first, total = ref.first_request[post], ref.total[post]
                in_start_up = rng.random() < 0.2
                early, late = rng.uniform(0.05, first), rng.uniform(0, (total - first) * 1.1)
                x.mark()
                launched = time.monotonic()
                proc = subprocess.Popen(
                    command(repo, "post-now", post),
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                moment = early
                if not in_start_up:
                    while x.first_request_at is None and proc.poll() is None:
                        time.sleep(0.005)
                    moment = (x.first_request_at or time.monotonic()) - launched + late
                where = ""
                try:
                    proc.wait(timeout=max(0.0, moment - (time.monotonic() - launched)))
                except subprocess.TimeoutExpired:
                    where = x.where()
                    os.kill(proc.pid, signal.SIGKILL)
                _, err = proc.communicate(timeout=60)
                if proc.returncode == -signal.SIGKILL:
                    tally.kills[where] += 1
                    budget.spend()
                else:
                    assert proc.returncode in (0, 1), f"seed {seed}: {err}"
                    assert "Traceback" not in err, f"seed {seed}: {err}"
                    tally.finished += 1
            # Restarted without kills: every post of the round goes out, within a bound.
            finals = 0
            while (post := unfinished(repo, ref.expected, seed)) is not None:
                assert finals < FINAL_RUNS, f"seed {seed}: {post} still not POSTED in {repo}"
                finals += 1
                tally.waited_out += wait_out_backoff(repo)
                done = run(repo, env, "post-now", post)
                assert done.returncode in (0, 1), f"seed {seed}: {done.stderr}"
                assert "Traceback" not in done.stderr, f"seed {seed}: {done.stderr}"
            tally.final += finals
            x.wait_idle()
            tally.timeouts += sum(r.fault == "slow" for r in x.requests)
            tally.deliveries += verify(status(repo, env), x, ref.expected, seed, repo)
    return tally


def test_post_now_killed_at_random_moments_publishes_every_delivery_exactly_once(
    tmp_path: Path, libre: LibreServer
) -> None:
    """SIGKILL at ≥ 50 random moments, restarts: each delivery is on X once, none is lost."""
    seed = int(os.environ.get("DIPLOBOT_CRASH_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\ncrash test seed {seed} (DIPLOBOT_CRASH_SEED={seed} repeats its kill moments)")
    started = time.monotonic()
    budget = KillBudget(KILLS)
    with ThreadPoolExecutor(LANES) as pool:
        # First a normal run of each post (start-up takes a while: imports), lanes sharing the
        # posts so that it is measured under the load the kills will see.
        shares = [POSTS[n::LANES] for n in range(LANES)]
        parts = pool.map(
            lambda n: reference_run(tmp_path / f"reference{n}", libre, shares[n], seed),
            range(LANES),
        )
        ref = Reference({}, {}, {})
        for part in parts:
            ref.expected.update(part.expected)
            ref.first_request.update(part.first_request)
            ref.total.update(part.total)
        assert len(ref.expected) == 24
        lanes = [
            pool.submit(crash_lane, n, seed, tmp_path / f"lane{n}", libre, ref, budget)
            for n in range(LANES)
        ]
        tallies = [f.result() for f in lanes]
    elapsed = time.monotonic() - started
    kills: Counter[str] = sum((t.kills for t in tallies), Counter())
    total = sum(kills.values())
    assert total >= KILLS
    assert kills["post stored at X, answer not received"] > 0  # the window that matters most
    assert kills["before any request to X"] > 0 and kills["request being handled by X"] > 0
    print(
        f"crash test: {total} SIGKILLs ({', '.join(f'{n} {w}' for w, n in kills.most_common())}); "
        f"{sum(t.finished for t in tallies)} runs finished on their own, "
        f"{sum(t.timeouts for t in tallies)} X timeouts (ambiguous outcomes), "
        f"{sum(t.final for t in tallies)} final runs, "
        f"{sum(t.waited_out for t in tallies)} back-offs waited out; "
        f"{sum(t.rounds for t in tallies)} rounds, {sum(t.deliveries for t in tallies)} "
        f"deliveries each on X exactly once, 0 duplicates, 0 lost; "
        f"{LANES} lanes, {elapsed:.1f} s"
    )


# --------------------------------------------------------------------------------------------
# 2. Two post-now at once
# --------------------------------------------------------------------------------------------


def test_two_post_now_at_once_publish_each_part_once(tmp_path: Path, libre: LibreServer) -> None:
    """Two processes started together on one thread: every part once per account."""
    post, rounds, split = "conference-soudan", 5, 0
    for n in range(rounds):
        repo = copy_repo(tmp_path / f"round{n}")
        with laggy_x(before=0.01, after=0.02) as x:
            env = environment(x, libre)
            procs = [
                subprocess.Popen(
                    command(repo, "post-now", post),
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            outputs = [p.communicate(timeout=120) for p in procs]
            for proc, (out, err) in zip(procs, outputs, strict=True):
                assert proc.returncode in (0, 1), out + err
                assert "Traceback" not in err, err
            rows = status(repo, env)
            assert len(rows) == 12
            assert [r for r in rows if r["state"] != "POSTED"] == []
            assert [r for r in rows if r["attempts"] != 1] == []  # each row claimed once
            owners = Counter(r["claimed_by"].rpartition(":")[2] for r in rows)
            assert set(owners) <= {str(p.pid) for p in procs}
            split += len(owners) == 2
            for account in HANDLES:
                timeline = x.timeline(account)
                assert [t["text"][-3:] for t in timeline] == ["1/3", "2/3", "3/3"], account
                assert [t["reply_to"] for t in timeline] == [None] + [
                    t["id"] for t in timeline[:-1]
                ]
                mine = sorted((r for r in rows if r["account"] == account), key=lambda r: r["part"])
                assert [r["remote_id"] for r in mine] == [t["id"] for t in timeline]
            created = [r for r in x.requests if r.method == "POST" and r.path == "/2/tweets"]
            assert [r.status for r in created] == [201] * 12  # no second try, no 403 duplicate
            assert x.errors == []
    print(f"\ntwo processes at once: {rounds} rounds, both processes published in {split}")
    assert split > 0  # the race really happened: both processes claimed rows in some round


# --------------------------------------------------------------------------------------------
# 3. No secret anywhere, even at DEBUG
# --------------------------------------------------------------------------------------------


def test_no_secret_in_debug_logs_output_outbox_or_state(
    repo: Path, x: XServer, libre: LibreServer
) -> None:
    """DEBUG JSON logs, output, outbox and state bytes hold no credential, on error paths too."""
    env = environment(x, libre, DIPLOBOT_LOG_LEVEL="DEBUG", DIPLOBOT_LOG_FORMAT="json")
    outputs: list[str] = []

    def diplobot(*args: str, code: int) -> subprocess.CompletedProcess[str]:
        done = run(repo, env, *args)
        outputs.extend([done.stdout, done.stderr])
        assert done.returncode == code, done.stdout + done.stderr
        return done

    diplobot("post-now", "journee-droits-humains", code=0)  # image upload, alt text, MT
    diplobot("post-now", "conference-soudan", code=0)  # a thread, machine-translated
    x.fail_next("401", method="POST", path="/2/tweets")
    refused = diplobot("post-now", "entretien-liban", "--lang", "fr", code=1)
    assert "FAILED X refused the credentials (401)" in refused.stdout
    x.fail_next("500", method="POST", path="/2/tweets")
    # and reconciliation cannot read the timeline (the account check before it went through)
    x.fail_next("401", method="GET", path="/2/users/*/tweets")
    unknown = diplobot("post-now", "bilan-cop31", "--lang", "es", code=1)
    assert "UNKNOWN" in unknown.stdout
    diplobot("post-now", "entretien-liban", "--lang", "en", "--dry-run", code=0)
    diplobot("status", code=0)
    diplobot("status", "--format", "json", code=0)

    lines = [line for o in outputs for line in o.splitlines() if line.startswith("{")]
    events = [json.loads(line)["record"] for line in lines]
    by_level = Counter(e["level"]["name"] for e in events)
    names = {e["message"] for e in events}
    assert by_level["DEBUG"] > 0 and "translate.done" in names  # DEBUG logging was on
    assert {"publish.failed", "publish.unknown", "reconcile.failed"} <= names  # error paths
    files = sorted(p for p in (repo / ".diplobot").iterdir() if p.is_file())
    assert {p.name for p in files} >= {"state.sqlite", "outbox.jsonl"}
    assert "Meeting today at the Quai d'Orsay" in (repo / ".diplobot/outbox.jsonl").read_text()
    blobs = {f"output {i}": o.encode() for i, o in enumerate(outputs)}
    blobs.update({p.name: p.read_bytes() for p in files})
    for secret in [*SECRETS, "CANARY"]:
        leaks = [name for name, blob in blobs.items() if secret.encode() in blob]
        assert leaks == [], f"{secret!r} found in {leaks}"
