"""Benchmark: ``diplobot validate`` as a whole process ÷ a process that only parses the YAML.

Run:  .venv/bin/python bench/bench_validate.py [--posts 10000] [--pairs 10] [--root ROOT]
                                                [--baseline OTHER_CHECKOUT]

Generates a repository with ``bench/genrepo.py`` (or takes ``--root``), then runs, alternately
(A B A B ...), ``diplobot validate --root ROOT`` (A: ``python -m bot`` with this checkout on
PYTHONPATH) and ``bench/bare_parse.py ROOT`` (B: every YAML file through ``yaml.load(...,
Loader=CSafeLoader)``, nothing else), each a fresh Python process: start-up, imports and
reading the files are counted on both sides. With ``--baseline``, a third process in each
round (C) is the same command run from another checkout (e.g. a worktree of main), so
before and after are measured in the same rounds. Prints, per round and then as median and
min–max over the rounds: the wall time of each process, the CPU time (user + system, its
children included) each used, and the ratios to B. The CPU ratio is the steadier one on a
shared machine; the wall ratio is the one an editor feels (on two idle cores it gains from
``--jobs 2``, the CPU ratio does not).
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


def run(command: list[str], tree: Path | None = None) -> tuple[float, float, str]:
    """Run ``command`` to its end (importing ``bot`` from ``tree`` if given); its wall time,
    its CPU time, and its standard output."""
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd: not a checkout of diplobot, which ``python -m`` would import instead of ``tree``
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env=env, cwd=tempfile.gettempdir()
    )
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
    parser.add_argument("--baseline", type=Path, help="another checkout of diplobot to time too")
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or generate(Path(tmp) / "repo", args.posts)
        validate_cmd = [python, "-m", "bot", "validate", "--root", str(root)]
        bare_cmd = [python, str(HERE / "bench/bare_parse.py"), str(root)]
        trees: dict[str, Path | None] = {"validate": HERE, "bare": None}
        if args.baseline:
            trees["baseline"] = args.baseline.resolve()
        commands = {
            name: (bare_cmd if name == "bare" else validate_cmd, tree)
            for name, tree in trees.items()
        }
        for command, tree in commands.values():  # untimed: page cache, .pyc files
            files = run(command, tree)[2]
        print(f"repository: {root} ({run(bare_cmd)[2]} YAML files); {os.cpu_count()} cores")
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for pair in range(args.pairs):
            line = []
            for name, (command, tree) in commands.items():
                wall, cpu, out = run(command, tree)
                if name != "bare":
                    assert out.splitlines()[-1] == "valid", out[-500:]
                walls[name].append(wall)
                cpus[name].append(cpu)
                line.append(f"{name} {wall:6.3f}/{cpu:6.3f}")
            ratios = "  ".join(
                f"{n}÷bare {walls[n][-1] / walls['bare'][-1]:.2f}x wall "
                f"{cpus[n][-1] / cpus['bare'][-1]:.2f}x cpu"
                for n in commands
                if n != "bare"
            )
            print(f"{pair + 1:3}  " + "  ".join(line) + "  " + ratios, flush=True)
    del files
    for name in commands:
        print(f"{name:>8} wall s: {spread(walls[name])}   cpu s: {spread(cpus[name])}")
    for name in commands:
        if name == "bare":
            continue
        wall_ratios = [a / b for a, b in zip(walls[name], walls["bare"], strict=True)]
        cpu_ratios = [a / b for a, b in zip(cpus[name], cpus["bare"], strict=True)]
        print(
            f"{name} ÷ bare: wall {spread(wall_ratios, '{:.2f}')}x   "
            f"cpu {spread(cpu_ratios, '{:.2f}')}x"
        )


if __name__ == "__main__":
    main()
