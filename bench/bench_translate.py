"""Benchmark: translate 1,000 posts into 3 languages against a local engine answering in 100 ms.

Run:  .venv/bin/python bench/bench_translate.py [--posts 1000] [--delay 0.1] [--parallel N]
                                                [--backend libre|deepl|microsoft]
Uses the fake server of the test suite (LibreTranslate by default), driven through the
backend's real client, and a real SQLite state file. Prints: unique (text, target) pairs,
engine requests (a batch is one) and requests per unique pair, wall time of the first run,
and requests and wall time of a second run (expected: 0).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "tests")]

from servers.translate import DeepLServer, LibreServer, MicrosoftServer  # noqa: E402

from bench.genrepo import generate  # noqa: E402
from bot.content.loader import load  # noqa: E402
from bot.log import setup_logging  # noqa: E402
from bot.settings import Secret, TranslatorSettings  # noqa: E402
from bot.state import open_store, state_url  # noqa: E402
from bot.translate.localize import localize  # noqa: E402
from bot.wiring import make_translator  # noqa: E402

SERVERS = {"libre": LibreServer, "deepl": DeepLServer, "microsoft": MicrosoftServer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--parallel", type=int, default=TranslatorSettings().parallel)
    parser.add_argument("--backend", choices=sorted(SERVERS), default="libre")
    args = parser.parse_args()
    setup_logging(level="WARNING", fmt="text")
    with tempfile.TemporaryDirectory() as tmp, SERVERS[args.backend](delay=args.delay) as server:
        root = generate(Path(tmp) / "repo", args.posts)
        content = load(root)
        settings = TranslatorSettings(
            backend=args.backend, url=server.url, key=Secret("bench"), parallel=args.parallel
        )
        translator = make_translator(settings)
        unique = set()
        for entry in content.posts.values():
            for lang in entry.languages:
                for part in range(entry.parts):
                    if entry.human_text(lang, part) is None:
                        unique.add((entry.human_text(entry.post.lang, part), lang))
        timings = []
        for run in (1, 2):
            cache = open_store(state_url(root, None)).translations  # a fresh process's view
            before = len(server.calls)
            start = time.perf_counter()
            result = localize(content, translator, cache, parallel=args.parallel)
            elapsed = time.perf_counter() - start
            calls = len(server.calls) - before
            timings.append((run, calls, elapsed, result.stats.failures))
    print(
        f"backend: {args.backend}  posts: {len(content.posts)}  unique (text, target) pairs: "
        f"{len(unique)}  engine delay: {args.delay * 1000:.0f} ms  parallelism: {args.parallel}"
    )
    for run, calls, elapsed, failures in timings:
        print(
            f"run {run}: {calls} engine requests ({calls / max(1, len(unique)):.3f} per unique "
            f"pair), {failures} failures, wall {elapsed:.2f} s"
        )


if __name__ == "__main__":
    main()
