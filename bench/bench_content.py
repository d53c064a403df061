"""Benchmark: validate and plan a 10,000-post repository; compare with a bare libyaml parse.

Run:  .venv/bin/python bench/bench_content.py [--posts 10000] [--repeat 5]
Prints the figures recorded in docs/benchmarks.md. Each figure is the best of --repeat runs
(the least disturbed by other work on the machine); the median is printed too.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.genrepo import generate
from bot.content.loader import validate
from bot.schedule.plan import plan


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def bare_parse(root: Path) -> int:
    count = 0
    for path in sorted((root / "content/posts").rglob("*.yaml")):
        with open(path, encoding="utf-8") as handle:
            yaml.load(handle, Loader=yaml.CSafeLoader)
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "repo", args.posts)
        bare_best, bare_med, files = timed(lambda: bare_parse(root), args.repeat)
        val_best, val_med, outcome = timed(lambda: validate(root), args.repeat)
        content, problems = outcome  # type: ignore[misc]
        assert content is not None, problems[:5]
        now = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
        plan_best, plan_med, result = timed(lambda: plan(content, now, days=30), args.repeat)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"posts: {files}  deliveries in 30 days: {len(result.deliveries)}")  # type: ignore[attr-defined]
    print(f"bare CSafeLoader parse: best {bare_best:.3f} s, median {bare_med:.3f} s")
    print(
        f"validate:               best {val_best:.3f} s, median {val_med:.3f} s "
        f"(ratio to bare parse {val_best / bare_best:.2f}x best, {val_med / bare_med:.2f}x median)"
    )
    print(f"plan 30 days:           best {plan_best:.3f} s, median {plan_med:.3f} s")
    print(f"peak RSS of the whole benchmark process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
