"""Benchmarks of the running service.

Run:  .venv/bin/python bench/bench_service.py lag        # (a) 500 deliveries due at once
      .venv/bin/python bench/bench_service.py lag --state postgresql   # (a) on PostgreSQL
      .venv/bin/python bench/bench_service.py bare       # (a') the same burst, a bare client
      .venv/bin/python bench/bench_service.py burst      # (a) and (a') alternately, 5 pairs
      .venv/bin/python bench/bench_service.py idle       # (b) idle with 10,000 posts, 60 s
      .venv/bin/python bench/bench_service.py commit     # (c) one changed post of 10,000

(a) 63 posts due at the same instant on 8 accounts (504 deliveries), the fake X of the test
    suite (OAuth and OpenAPI checks on) in its own process, answering each request after
    10 ms; the service runs in this process. Prints p50, p99 and max lag from the due time to
    the moment the fake received the POST, and the CPU both processes used during the burst.
    BENCH_PARALLEL / BENCH_PER_ACCOUNT override the service's publishing parallelism;
    BENCH_LATE_AFTER=1 adds a post due 1 s after the burst, on every account, and prints its
    lag (the late trigger of issue 14). ``--state``: ``sqlite`` (default, a file in the
    temporary folder), ``postgresql`` (a PostgreSQL server started from the machine's binaries
    as the tests do, but durable: every commit synced, as SQLite's ``synchronous=FULL``), or a
    state URL (an existing, empty database).
(a') the same 504 posts sent to the same fake X (its own process) by a bare asyncio + tweepy
    ``AsyncClient`` (one aiohttp session, 16 requests at once): its CPU per post, the floor
    the service's CPU per delivery is compared with.
    ``burst`` runs (a) and (a') alternately, each in a process of its own, BENCH_PAIRS times
    (default 5): each one's CPU per delivery, medians with min–max, and the ratio.
(b) ``diplobot run`` as a real process on a generated 10,000-post repository (dry run: no
    credentials, translations from the fake LibreTranslate); once ready, its resident memory
    and CPU use over 60 s, read from /proc.
(c) a git repository of 10,000 posts followed by the service (GitSource); one post inside the
    planning window is edited and committed; prints the time of the sync that applies it
    (fetch + reset + validate + plan + record), best and median of 5.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "tests")]

from servers.translate import LibreServer  # noqa: E402
from servers.x import XServer  # noqa: E402

from bench.genrepo import generate  # noqa: E402
from bench.state import KINDS, server_cpu, state_for  # noqa: E402
from bot.log import setup_logging  # noqa: E402

ACCOUNTS = {f"fr_{i}": (f"tok-{i}", f"sec-{i}", f"francediplo_{i}") for i in range(8)}
APP = ("bench-app-key", "bench-app-secret")


class TimedX(XServer):
    """The fake X, recording when each request arrived, and answering after ``latency``."""

    def __init__(self, latency: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.latency = latency
        self.arrivals: list[tuple[float, str, str]] = []
        self._arrivals_lock = threading.Lock()

    def _serve(self, handler: Any) -> None:
        arrived = time.time()
        with self._arrivals_lock:
            self.arrivals.append((arrived, handler.command, handler.path))
        time.sleep(self.latency)
        super()._serve(handler)


def serve_x(latency: float) -> None:
    """Run the timed fake X in its own process (so it does not compete with the service for
    this process's GIL): print its URL, serve until stdin closes, then print the arrival
    times of POST /2/tweets and the number of posts on the timelines, as JSON."""
    import json

    with TimedX(latency, accounts=ACCOUNTS, consumer=APP) as x:
        print(x.url, flush=True)
        sys.stdin.read()
        posted = [a[0] for a in x.arrivals if a[1] == "POST" and a[2] == "/2/tweets"]
        tweets = [t for a in ACCOUNTS for t in x.timeline(a)]
        late = [t["created_at"].timestamp() for t in tweets if t["text"].startswith("Tardif")]
        found = {"posted": posted, "timelines": len(tweets), "late": late}
        print(json.dumps(found), flush=True)


def bench_lag(posts: int = 63, state: str = "sqlite") -> None:
    import json

    from sqlalchemy import func, select

    from bot.service import Service
    from bot.settings import ServiceSettings, Settings
    from bot.source import LocalSource
    from bot.state import open_store
    from bot.state.tables import deliveries
    from bot.wiring import Wiring

    fake = subprocess.Popen(
        [sys.executable, __file__, "serve-x"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdout is not None and fake.stdin is not None
    x_url = fake.stdout.readline().strip()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        (root / "schedules").mkdir(parents=True)
        accounts = "\n".join(
            f"  {a}: {{lang: fr, handle: {h}}}" for a, (_t, _s, h) in ACCOUNTS.items()
        )
        (root / "schedules/accounts.yaml").write_text(
            f"timezone: Europe/Paris\naccounts:\n{accounts}\n", encoding="utf-8"
        )
        ahead = float(os.environ.get("BENCH_DUE_IN", "15"))
        due = (datetime.now(UTC) + timedelta(seconds=ahead)).replace(microsecond=0)
        (root / "content/posts").mkdir(parents=True)
        for i in range(posts):
            (root / f"content/posts/p{i:03d}.yaml").write_text(
                f"lang: fr\npublish_at: {due:%Y-%m-%dT%H:%M:%S}+00:00\n"
                f'text: "Annonce numéro {i} de la journée, pour tous nos partenaires."\n',
                encoding="utf-8",
            )
        late_after = float(os.environ.get("BENCH_LATE_AFTER", "0"))
        if late_after:  # a post due that long after the burst, on every account
            late_due = due + timedelta(seconds=late_after)
            (root / "content/posts/tardif.yaml").write_text(
                f"lang: fr\npublish_at: {late_due:%Y-%m-%dT%H:%M:%S}+00:00\n"
                f'text: "Tardif: dû {late_after:g} s après la rafale."\n',
                encoding="utf-8",
            )
        os.environ.update(
            {
                "DIPLOBOT_X_API_URL": x_url,
                "DIPLOBOT_X_API_KEY": APP[0],
                "DIPLOBOT_X_API_SECRET": APP[1],
                "DIPLOBOT_TRANSLATOR": "libre",
                "DIPLOBOT_TRANSLATOR_URL": "http://127.0.0.1:9/",
            }
        )
        for account, (token, secret, _h) in ACCOUNTS.items():
            os.environ[f"DIPLOBOT_{account.upper()}_ACCESS_TOKEN"] = token
            os.environ[f"DIPLOBOT_{account.upper()}_ACCESS_SECRET"] = secret
        stack = contextlib.ExitStack()
        url, server = stack.enter_context(state_for(state, Path(tmp)))
        store = open_store(url)
        service = Service(
            LocalSource(root),
            store,
            root / ".diplobot",
            ServiceSettings(
                sync_interval=300,
                sweep_interval=5,
                publish_parallel=int(os.environ.get("BENCH_PARALLEL", "16")),
                per_account=int(os.environ.get("BENCH_PER_ACCOUNT", "4")),
            ),
            wiring=Wiring(Settings.from_env(os.environ)),
        )
        started = time.perf_counter()
        service.start()
        ready_in = time.perf_counter() - started
        expected = (posts + (1 if late_after else 0)) * len(ACCOUNTS)
        from bot.state.ledger import State

        # Polled with a COUNT, not by reading the rows: the poll shares this process's CPU
        # with the service, and must not slow down what it measures.
        posted = (
            select(func.count()).select_from(deliveries).where(deliveries.c.state == State.POSTED)
        )
        time.sleep(max(0.0, due.timestamp() - time.time() - 1))
        import resource

        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        cpu0, fake_cpu0 = time.process_time(), _proc_stat(fake.pid)[0]
        db_cpu0 = server_cpu(server) if server is not None else 0.0
        deadline = due.timestamp() + 60
        while time.time() < deadline:
            with store.engine.connect() as conn:
                if conn.execute(posted).scalar_one() >= expected:
                    break
            time.sleep(0.25)
        cpu, fake_cpu = time.process_time() - cpu0, _proc_stat(fake.pid)[0] - fake_cpu0
        db_cpu = server_cpu(server) - db_cpu0 if server is not None else 0.0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        switches = (ru1.ru_nvcsw - ru0.ru_nvcsw) + (ru1.ru_nivcsw - ru0.ru_nivcsw)
        service.stop()
        store.close()
        stack.close()
        out, _ = fake.communicate("", timeout=30)
        result = json.loads(out.strip().splitlines()[-1])
    if late_after:
        late = sorted(t - due.timestamp() - late_after for t in result["late"])
        print(
            f"the post due {late_after:g} s after the burst, on {len(late)} accounts: lag "
            f"min {late[0]:.3f} s, max {late[-1]:.3f} s"
            if late
            else f"the post due {late_after:g} s after the burst: not published"
        )
    lags = sorted(t - due.timestamp() for t in result["posted"])
    q = statistics.quantiles(lags, n=100)
    print(f"state: {url.split('://')[0]}")
    print(
        f"deliveries due at once: {expected}; received by X: {len(lags)}; "
        f"on the timelines: {result['timelines']}; start-up (recording all of them) took "
        f"{ready_in:.1f} s, before the due time"
    )
    print(
        f"lag due -> request received: p50 {q[49]:.3f} s, p99 {q[98]:.3f} s, "
        f"max {lags[-1]:.3f} s, min {lags[0]:.3f} s"
    )
    print(
        f"CPU during the burst: service {cpu:.2f} s ({1000 * cpu / expected:.2f} ms a delivery), "
        f"fake X {fake_cpu:.2f} s ({1000 * fake_cpu / expected:.2f} ms a request); "
        f"service context switches {switches}"
    )
    if server is not None:
        print(
            f"CPU of the PostgreSQL server during the burst: {db_cpu:.2f} s "
            f"({1000 * db_cpu / expected:.2f} ms a delivery)"
        )


def bench_bare(posts: int = 63) -> None:
    """The burst of :func:`bench_lag` from a bare asyncio + tweepy client: its CPU a post."""
    import asyncio

    import aiohttp
    import tweepy.asynchronous
    from oauthlib.oauth1 import Client as OAuthClient
    from yarl import URL

    fake = subprocess.Popen(
        [sys.executable, __file__, "serve-x"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdout is not None and fake.stdin is not None
    x_url = fake.stdout.readline().strip()

    class Bare(tweepy.asynchronous.AsyncClient):  # type: ignore[misc]
        """tweepy's AsyncClient with its request sent to the fake X instead of api.twitter.com
        (tweepy's own ``request``, user context, that URL changed)."""

        async def request(
            self,
            method: str,
            route: str,
            params: dict[str, Any] | None = None,
            json: Any = None,
            user_auth: bool = False,
        ) -> Any:
            headers = {"User-Agent": self.user_agent, "Content-Type": "application/json"}
            oauth = OAuthClient(
                self.consumer_key,
                self.consumer_secret,
                self.access_token,
                self.access_token_secret,
            )
            url = str(URL(x_url + route).with_query(sorted((params or {}).items())))
            url, headers, _body = oauth.sign(url, method, headers=headers)
            before, _, query = url.partition("?")
            signed = URL(f"{before}?{query.replace(':', '%3A')}", encoded=True)
            async with self.session.request(method, signed, json=json, headers=headers) as r:
                await r.read()
            if not 200 <= r.status < 300:
                raise RuntimeError(f"X answered {r.status}")
            return r

    async def burst() -> float:
        async with aiohttp.ClientSession() as session:
            clients = {}
            for account, (token, secret, _h) in ACCOUNTS.items():
                client = Bare(
                    consumer_key=APP[0],
                    consumer_secret=APP[1],
                    access_token=token,
                    access_token_secret=secret,
                    return_type=dict,
                )
                client.session = session
                clients[account] = client
            limit = asyncio.Semaphore(int(os.environ.get("BENCH_PARALLEL", "16")))

            async def one(account: str, i: int) -> None:
                async with limit:
                    text = f"Annonce numéro {i} de la journée, pour tous nos partenaires."
                    await clients[account].create_tweet(text=text, user_auth=True)

            cpu0 = time.process_time()
            await asyncio.gather(*(one(a, i) for i in range(posts) for a in ACCOUNTS))
            return time.process_time() - cpu0

    cpu = asyncio.run(burst())
    fake.communicate("", timeout=30)
    sent = posts * len(ACCOUNTS)
    print(f"bare client: {sent} posts, CPU {cpu:.2f} s ({1000 * cpu / sent:.2f} ms a delivery)")


def bench_burst(state: str = "sqlite") -> None:
    """(a) and (a') alternately, each in its own process: CPU per delivery, side by side."""
    import re

    pairs = int(os.environ.get("BENCH_PAIRS", "5"))
    env = {**os.environ, "BENCH_DUE_IN": os.environ.get("BENCH_DUE_IN", "8")}
    found: dict[str, list[float]] = {"service": [], "bare": []}
    for n in range(pairs):
        for which, key in (("lag", "service"), ("bare", "bare")):
            out = subprocess.run(
                [sys.executable, __file__, which, "--state", state],
                env=env,
                capture_output=True,
                text=True,
            ).stdout
            match = re.search(r"\(([\d.]+) ms a delivery\)", out)
            assert match, out
            found[key].append(float(match[1]))
        print(
            f"pair {n + 1}: service {found['service'][-1]:.2f} ms, bare {found['bare'][-1]:.2f} ms"
        )
    ratios = [s / b for s, b in zip(found["service"], found["bare"], strict=True)]
    for key, values in found.items():
        print(
            f"{key}: CPU a delivery median {statistics.median(values):.2f} ms "
            f"(min {min(values):.2f}, max {max(values):.2f}) over {pairs} runs"
        )
    print(
        f"service / bare: median {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
    )


def _proc_stat(pid: int) -> tuple[float, int]:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    with open(f"/proc/{pid}/status") as handle:
        rss = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS"))
    return cpu, rss


def bench_idle(seconds: int = 60) -> None:
    """A 10,000-post folder followed by ``diplobot run``, sampled idle (``bench_idle.py``
    measures the same at 1k/10k/50k, from git or a folder, beside a baseline)."""
    from bench.bench_idle import idle_figures

    with tempfile.TemporaryDirectory() as tmp, LibreServer() as libre:
        root = generate(Path(tmp) / "repo", 10_000)
        port = 18000 + os.getpid() % 1000
        env = {
            **os.environ,
            "DIPLOBOT_HTTP_ADDR": f"127.0.0.1:{port}",
            "DIPLOBOT_TRANSLATOR": "libre",
            "DIPLOBOT_TRANSLATOR_URL": libre.url,
            "DIPLOBOT_LOG_LEVEL": "WARNING",
            "DIPLOBOT_LOG_FORMAT": "json",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--root", str(root)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        figures = idle_figures(proc, port, seconds)
    print(
        f"10,000 posts; ready after {figures['ready']:.1f} s (first sync: validate, plan, "
        "translate and record the 7-day window)"
    )
    print(
        f"idle {seconds} s: CPU {figures['cpu']:.2f} % of one core; RSS {figures['rss']:.0f} MB "
        f"(peak while idle {figures['peak']:.0f} MB)"
    )


def bench_commit(repeat: int = 5) -> None:
    """The first sync of a 10,000-post git repository, then ``repeat`` edited posts committed
    and applied one by one (``bench_apply.py`` measures the same at any size)."""
    from bench.bench_apply import bench_size

    with LibreServer() as libre:
        first, times = bench_size(10_000, repeat, False, libre.url)
    print(f"first sync of 10,000 posts (clone, validate, plan, translate, record): {first:.1f} s")
    print(
        f"one edited post committed -> applied (fetch, reset, validate, plan, record): "
        f"best {min(times):.3f} s, median {statistics.median(times):.3f} s "
        f"over {len(times)} commits"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("which", choices=("lag", "bare", "burst", "idle", "commit", "serve-x"))
    parser.add_argument(
        "--state",
        default="sqlite",
        help=f"lag and burst: {KINDS}",
    )
    args = parser.parse_args()
    setup_logging(level="ERROR", fmt="text")
    if args.which == "serve-x":
        serve_x(float(os.environ.get("BENCH_X_LATENCY", "0.010")))
        return
    if args.which == "lag":
        bench_lag(state=args.state)
        return
    if args.which == "burst":
        bench_burst(state=args.state)
        return
    {"bare": bench_bare, "idle": bench_idle, "commit": bench_commit}[args.which]()


if __name__ == "__main__":
    main()
