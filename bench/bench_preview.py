"""Benchmark: the preview of the 10,000-post generated repository (bench/genrepo.py) for 30 days.

Run:  .venv/bin/python bench/bench_preview.py [--posts 10000] [--days 30] [--repeat 5]
Prints the figures recorded in docs/benchmarks.md. What is timed is what ``diplobot preview``
does after loading: plan (nothing saved), localize (an in-process translator that returns its
input, behind the real SQLite translation cache), the model, every page rendered and the site
written (pages and images) to a temporary folder. "cold": the first run, every machine
translation made and stored in the cache; "warm": the cache holds them (a service, or a CI job
that keeps its cache). Each warm figure is the best of --repeat runs (the least disturbed by
other work on the machine); the median is printed too. Loading the repository is timed apart.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.genrepo import generate
from bot.content.loader import load
from bot.preview.site import make
from bot.publish.media import FolderMedia
from bot.state import open_store


class Echo:
    """A translator that answers at once with its input (the engine is not what is timed)."""

    name = "bench-echo"

    def translate(self, text: str, source: str, target: str) -> str:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    now = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "repo", args.posts)
        start = time.perf_counter()
        content = load(root)
        load_s = time.perf_counter() - start
        store = open_store(f"sqlite:///{Path(tmp) / 'state.sqlite'}")
        out = Path(tmp) / "site"

        def once() -> tuple[float, int, int, int]:
            shutil.rmtree(out, ignore_errors=True)
            begin = time.perf_counter()
            made = make(content, now, args.days, Echo(), store.translations, parallel=4)
            made.site.write(out, FolderMedia(root))
            took = time.perf_counter() - begin
            cards = sum(len(p.cards) for p in made.preview.posts)
            return took, len(made.site.pages), cards, len(made.site.assets)

        cold, pages, cards, images = once()
        warm = [once()[0] for _ in range(args.repeat)]
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"posts: {len(content.posts)}  days: {args.days}  pages: {pages}  cards: {cards}  "
        f"images: {images}  site: {size / 1e6:.1f} MB"
    )
    print(f"load (validate) the repository: {load_s:.3f} s (not part of the figures below)")
    print(f"preview, cold cache:  {cold:.3f} s")
    print(f"preview, warm cache:  best {min(warm):.3f} s, median {statistics.median(warm):.3f} s")
    print(f"peak RSS of the whole benchmark process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
