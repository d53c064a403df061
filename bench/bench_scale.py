"""Benchmark: the reference network's scale — 269 missions, ~1,000 accounts, 50,000 posts —
on SQLite and on PostgreSQL.

Run:  .venv/bin/python bench/bench_scale.py [--missions 269] [--posts 50000] [--repeat 3]
                                            [--edits 3] [--states sqlite postgresql]

One repository is generated (``bench/genrepo.py --missions``) and committed to a git origin.
Then, each a median of ``--repeat`` runs (min–max beside it):

- **validate**: ``diplobot validate --root REPO`` as a whole process, with ``--no-cache``
  and with its per-file result cache warm (a first run fills it, not counted);
- **plan**: ``diplobot plan --root REPO --days 14 --format json`` as a whole process (its
  state: an empty SQLite file);
- for each state kind, on an empty database: **first start** (the service's first
  ``sync()`` from git: clone, validate, plan, translate through the fake LibreTranslate of the
  test suite, record every delivery of the planning window), then **one-commit apply**: a post
  inside the window edited and committed ``--edits`` times, each ``sync()`` timed.

PostgreSQL is the machine's own server, started durable (fsync on) by bench/state.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "tests")]

from servers.translate import LibreServer  # noqa: E402

from bench.bench_apply import follower  # noqa: E402
from bench.genrepo import commit_origin, generate  # noqa: E402
from bench.state import state_for  # noqa: E402
from bot.log import setup_logging  # noqa: E402

DIPLOBOT = [sys.executable, "-m", "bot"]


class NetworkLibre(LibreServer):
    """The fake LibreTranslate with the languages of the generated network that LibreTranslate
    serves (Swahili it does not: those deliveries stay held, awaiting translation, as they
    would in production with this engine)."""

    LANGUAGES: ClassVar[dict[str, str]] = {
        **LibreServer.LANGUAGES,
        "de": "German",
        "fa": "Persian",
        "hi": "Hindi",
        "it": "Italian",
        "ja": "Japanese",
        "ko": "Korean",
        "ru": "Russian",
        "tr": "Turkish",
    }


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


def commit(cwd: Path, message: str) -> None:
    git(cwd, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", message)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"


def timed_process(argv: list[str], repeat: int, ok: Callable[[int], bool]) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if not ok(done.returncode):
            raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return times


@contextmanager
def new_states(kind: str, folder: Path) -> Iterator[Callable[[], str]]:
    """A function that makes a new, empty state of ``kind`` (bench/state.py: PostgreSQL is
    a durable throwaway server), each call a new SQLite file or PostgreSQL database."""
    with state_for(kind, folder) as (first, server):
        made = iter(range(1_000_000))

        def new() -> str:
            n = next(made)
            if server is not None:
                return first if n == 0 else server.url(server.create_database())
            path = folder / f"state-{n}" / "state.sqlite"
            path.parent.mkdir(parents=True)
            return f"sqlite:///{path.resolve()}"

        yield new


def service_run(origin: Path, url: str, work: Path, edits: int) -> tuple[float, list[float], int]:
    """The first sync's time, each one-commit apply's time, and the deliveries recorded."""
    service, store = follower(origin, url, work)
    start = time.perf_counter()
    service.sync()
    first = time.perf_counter() - start
    content = service.content
    assert content is not None
    now = datetime.now(UTC)
    soon = sorted(
        (e for e in content.posts.values() if e.due is not None and e.due > now),
        key=lambda e: e.due or now,
    )[:edits]
    times = []
    for n, entry in enumerate(soon):
        path = origin / entry.path
        path.write_text(
            path.read_text(encoding="utf-8").replace('text: "', f'text: "Mise à jour {n}. ', 1),
            encoding="utf-8",
        )
        commit(origin, "edit")
        start = time.perf_counter()
        service.sync()
        times.append(time.perf_counter() - start)
        assert service.seen_revision == service.revision, "the edit was not applied"
        rows = service.ledger.rows(entry.id)
        # (the first ``text: "`` of the file may be a thread part's: some row has it)
        assert any(f"Mise à jour {n}" in r.text for r in rows), entry.id
    recorded = len(service.ledger.rows())
    store.close()
    return first, times, recorded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--missions", type=int, default=269)
    parser.add_argument("--posts", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--edits", type=int, default=3)
    parser.add_argument(
        "--states", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    args = parser.parse_args()
    setup_logging(level="ERROR", fmt="text")
    with tempfile.TemporaryDirectory() as tmp:
        origin = commit_origin(generate(Path(tmp) / "origin", args.posts, missions=args.missions))
        import yaml

        accounts = sum(
            len(yaml.safe_load(p.read_text(encoding="utf-8"))["accounts"])
            for p in [origin / "schedules/accounts.yaml", *origin.glob("missions/*/accounts.yaml")]
        )
        print(
            f"repository: {args.missions + 1} missions (the central one too), {accounts} "
            f"accounts, {args.posts} posts"
        )
        for label, extra in (("no result cache", ["--no-cache"]), ("warm result cache", [])):
            times = timed_process(
                [*DIPLOBOT, "validate", "--root", str(origin), *extra],
                args.repeat + (0 if extra else 1),
                lambda rc: rc == 0,
            )
            if not extra:
                times = times[1:]  # the first run fills the cache
            print(f"validate (whole process, {label}): {spread(times)}")
        plan_root = Path(tmp) / "plan"
        shutil.copytree(origin, plan_root, ignore=shutil.ignore_patterns(".git"))
        times = timed_process(
            [*DIPLOBOT, "plan", "--root", str(plan_root), "--days", "14", "--format", "json"],
            args.repeat,
            lambda rc: rc in (0, 1),  # 1: the plan has warnings
        )
        print(f"plan, 14 days (whole process): {spread(times)}")
        with NetworkLibre() as libre:
            os.environ.update(DIPLOBOT_TRANSLATOR="libre", DIPLOBOT_TRANSLATOR_URL=libre.url)
            for kind in args.states:
                firsts: list[float] = []
                applies: list[float] = []
                recorded = 0
                with new_states(kind, Path(tmp) / kind) as new_url:
                    for n in range(args.repeat):
                        work = Path(tmp) / f"{kind}-{n}"
                        first, edits, recorded = service_run(origin, new_url(), work, args.edits)
                        firsts.append(first)
                        applies.extend(edits)
                        shutil.rmtree(work, ignore_errors=True)
                        git(origin, "reset", "-q", "--hard", "HEAD~" + str(args.edits))
                print(
                    f"{kind}: first start {spread(firsts)}, {recorded} deliveries recorded; "
                    f"one-commit apply {spread(applies)}"
                )


if __name__ == "__main__":
    main()
