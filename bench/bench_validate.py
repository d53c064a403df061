"""Benchmark: ``diplobot validate`` as a whole process ÷ a process that only parses the YAML.

Run:  .venv/bin/python bench/bench_validate.py [--posts 10000] [--pairs 10] [--root ROOT]

Generates a repository with ``bench/genrepo.py`` (or takes ``--root``), then runs, alternately
(A B A B ...), ``diplobot validate --root ROOT`` (A) and ``bench/bare_parse.py ROOT`` (B: every
YAML file through ``yaml.load(..., Loader=CSafeLoader)``, nothing else), each a fresh Python
process: start-up, imports and reading the files are counted on both sides. Prints, per pair
and then as median and min–max over the pairs: the wall time of each process, the CPU time
(user + system) each used, and the ratio A ÷ B of both. The CPU ratio is the steadier one on
a shared machine; the wall ratio is the one an editor feels.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from bench.genrepo import generate  # noqa: E402


def run(command: list[str]) -> tuple[float, float, str]:
    """Run ``command`` to its end; its wall time, its CPU time, and its standard output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{command} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout.strip()


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    """``median (min–max)`` of ``values``."""
    med, low, high = statistics.median(values), min(values), max(values)
    return f"{fmt.format(med)} ({fmt.format(low)}–{fmt.format(high)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--root", type=Path, help="an existing repository (default: generate)")
    args = parser.parse_args()
    python = sys.executable
    diplobot = str(Path(python).with_name("diplobot"))
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or generate(Path(tmp) / "repo", args.posts)
        validate_cmd = [diplobot, "validate", "--root", str(root)]
        bare_cmd = [python, str(HERE / "bench/bare_parse.py"), str(root)]
        # One untimed run of each: the files in the page cache, the .pyc files written.
        run(validate_cmd)
        files = run(bare_cmd)[2]
        print(f"repository: {root} ({files} YAML files); {os.cpu_count()} cores")
        print("pair  validate wall/cpu   bare wall/cpu   ratio wall  cpu")
        walls: list[tuple[float, float]] = []
        cpus: list[tuple[float, float]] = []
        for pair in range(args.pairs):
            a_wall, a_cpu, out = run(validate_cmd)
            b_wall, b_cpu, _ = run(bare_cmd)
            assert out.splitlines()[-1] == "valid", out[-500:]
            walls.append((a_wall, b_wall))
            cpus.append((a_cpu, b_cpu))
            print(
                f"{pair + 1:4}  {a_wall:6.3f} / {a_cpu:6.3f}   {b_wall:6.3f} / {b_cpu:6.3f}"
                f"   {a_wall / b_wall:5.2f}x  {a_cpu / b_cpu:5.2f}x"
            )
    print(f"validate wall s: {spread([a for a, _ in walls])}")
    print(f"bare     wall s: {spread([b for _, b in walls])}")
    print(f"validate cpu s:  {spread([a for a, _ in cpus])}")
    print(f"bare     cpu s:  {spread([b for _, b in cpus])}")
    print(f"ratio wall: {spread([a / b for a, b in walls], '{:.2f}')}x")
    print(f"ratio cpu:  {spread([a / b for a, b in cpus], '{:.2f}')}x")


if __name__ == "__main__":
    main()
