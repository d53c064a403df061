"""Benchmark: one edited post, committed, applied by the service — at 1k, 10k and 50k posts.

Run:  .venv/bin/python bench/bench_apply.py [--posts 1000 10000 50000] [--edits 5] [--profile]

For each size: a git repository of generated posts (``bench/genrepo.py``) followed by the
service (``GitSource``, translations from the fake LibreTranslate of the test suite); after the
first sync, one post inside the planning window is edited and committed ``--edits`` times, and
each ``Service.sync()`` that applies it is timed (fetch + reset, validate with the per-file
cache, plan, record). Prints the median and min–max per size, and with ``--profile`` where the
time of the last sync went (cProfile, the 12 costliest functions).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "tests")]

from servers.translate import LibreServer  # noqa: E402

from bench.genrepo import commit_origin, generate  # noqa: E402
from bot.log import setup_logging  # noqa: E402

if TYPE_CHECKING:
    from bot.service import Service
    from bot.state import Store


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


def follower(origin: Path, url: str, work: Path) -> tuple[Service, Store]:
    """The service (not started: the caller times its ``sync``) following the git repository
    ``origin`` on the state at ``url``, its clone in ``work``; and its store, to close."""
    from bot.service import Service
    from bot.settings import ServiceSettings, Settings
    from bot.source import GitSource
    from bot.state import open_store
    from bot.wiring import Wiring

    settings = Settings.from_env(os.environ)
    store = open_store(url, lease=settings.lease)
    service = Service(
        GitSource(str(origin), "main", work / "repo", settings.git_env),
        store,
        work,
        ServiceSettings(sync_interval=300),
        wiring=Wiring(settings),
    )
    return service, store


def bench_size(posts: int, edits: int, profile: bool, libre_url: str) -> tuple[float, list[float]]:
    """The first sync's time and each edit's apply time, for a repository of ``posts``."""
    from bot.state import state_url

    with tempfile.TemporaryDirectory() as tmp:
        origin = commit_origin(generate(Path(tmp) / "origin", posts))
        os.environ.update(DIPLOBOT_TRANSLATOR="libre", DIPLOBOT_TRANSLATOR_URL=libre_url)
        state = Path(tmp) / "state"
        service, _store = follower(origin, state_url(state, str(state / "state.sqlite")), state)
        start = time.perf_counter()
        service.sync()
        first = time.perf_counter() - start
        content = service.content
        assert content is not None
        soon = sorted(
            (e for e in content.posts.values() if e.due is not None and e.due > datetime.now(UTC)),
            key=lambda e: e.due or 0,
        )[:edits]
        times = []
        profiler = cProfile.Profile()
        for n, entry in enumerate(soon):
            path = origin / entry.path
            path.write_text(
                path.read_text(encoding="utf-8").replace('text: "', f'text: "Mise à jour {n}. ', 1),
                encoding="utf-8",
            )
            git(origin, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "edit")
            last = profile and n == len(soon) - 1
            if last:
                profiler.enable()
            start = time.perf_counter()
            service.sync()
            times.append(time.perf_counter() - start)
            if last:
                profiler.disable()
            assert service.seen_revision == service.revision, "the edit was not applied"
        rows = service.ledger.rows(soon[-1].id)
        assert rows and "Mise à jour" in rows[0].text
        shutil.rmtree(state, ignore_errors=True)
    if profile:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        print(out.getvalue())
    return first, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    setup_logging(level="ERROR", fmt="text")
    with LibreServer() as libre:
        for posts in args.posts:
            first, times = bench_size(posts, args.edits, args.profile, libre.url)
            print(
                f"{posts:>6} posts: first sync {first:.1f} s; one edited post applied: median "
                f"{statistics.median(times):.3f} s ({min(times):.3f}–{max(times):.3f}) "
                f"over {len(times)} commits",
                flush=True,
            )


if __name__ == "__main__":
    main()
