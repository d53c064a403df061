"""Benchmark: an idle ``diplobot run`` holding 1k / 10k / 50k posts — resident memory and CPU.

Run:  .venv/bin/python bench/bench_idle.py [--posts 1000 10000 50000] [--seconds 60]
          [--source git|folder] [--pairs 1] [--baseline OTHER_CHECKOUT]

For each size: a generated repository (``bench/genrepo.py``) followed by ``diplobot run`` as a
real process (dry run: the outbox; translations from the fake LibreTranslate of the test
suite; ``--source git``, the default: the repository is a git origin the service clones and
fetches, as in production; ``--source folder``: ``--root`` on the folder itself). Once
``/readyz`` answers, it is left to settle (the work a start leaves for after ready, e.g. the
first sweep, until a 5 s step uses under 2 % of a core, at most 120 s), then
``/proc/<pid>/status`` (VmRSS) and ``/proc/<pid>/stat`` (user + system CPU) are sampled every
second for ``--seconds``: prints the RSS at the end, its peak, and the CPU used as a
percentage of one core. The sync interval is the default (30 s),
so a 60 s window holds two idle syncs (fetch, nothing new).

With ``--baseline``, each round runs this tree and then the other checkout (its ``bot`` package
first on PYTHONPATH, this virtualenv), alternately, ``--pairs`` times per size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "tests")]

from servers.translate import LibreServer  # noqa: E402

from bench.genrepo import commit_origin, generate  # noqa: E402


def proc_sample(pid: int) -> tuple[float, int]:
    """(CPU seconds used, user + system; resident memory in kB) of process ``pid``."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as handle:
        rss = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS"))
    return cpu, rss


def run_idle(
    repo: Path, source: str, seconds: int, libre: str, tree: Path | None, work: Path
) -> dict[str, float]:
    """One ``diplobot run`` on ``repo``: ready time, CPU % over ``seconds``, RSS (MB)."""
    port = 18000 + (os.getpid() + int(time.time())) % 2000
    state = work / "state"
    subprocess.run(["rm", "-rf", str(state)], check=True)
    state.mkdir(parents=True)
    env = {
        **os.environ,
        "DIPLOBOT_HTTP_ADDR": f"127.0.0.1:{port}",
        "DIPLOBOT_TRANSLATOR": "libre",
        "DIPLOBOT_TRANSLATOR_URL": libre,
        "DIPLOBOT_LOG_LEVEL": "WARNING",
        "DIPLOBOT_LOG_FORMAT": "json",
    }
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    if source == "git":
        env.update(DIPLOBOT_REPO_URL=str(repo), DIPLOBOT_REPO_BRANCH="main")
        command = ["run", "--root", str(state / "content"), "--dry-run"]
        command += ["--state", str(state / "state.sqlite")]
    else:
        command = ["run", "--root", str(repo), "--dry-run", "--state", str(state / "s.sqlite")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", *command],
        env=env,
        cwd=str(work),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return idle_figures(proc, port, seconds)


def idle_figures(proc: subprocess.Popen[bytes], port: int, seconds: int) -> dict[str, float]:
    """Wait until the started ``diplobot run`` (``proc``, serving on ``port``) is ready, let
    it settle (see the module's docstring), then sample it for ``seconds``: its time to ready
    and to settle (s), CPU (% of one core), RSS at the end and its peak (MB). The process is
    terminated on return."""
    try:
        start = time.time()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"diplobot run exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() - start > 600:
                raise SystemExit("the service did not become ready in 600 s")
            time.sleep(0.25)
        ready = time.time() - start
        settled, cpu0 = 0.0, proc_sample(proc.pid)[0]
        while settled < 120:  # the start-up work done after ready, before "idle"
            time.sleep(5)
            settled += 5
            before, cpu0 = cpu0, proc_sample(proc.pid)[0]
            if cpu0 - before < 0.02 * 5:
                break
        t0 = time.time()
        peak = 0
        while time.time() - t0 < seconds:
            time.sleep(1)
            peak = max(peak, proc_sample(proc.pid)[1])
        cpu1, rss = proc_sample(proc.pid)
        elapsed = time.time() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {
        "ready": ready,
        "settled": settled,
        "cpu": 100 * (cpu1 - cpu0) / elapsed,
        "rss": rss / 1024,
        "peak": peak / 1024,
    }


def _fmt(values: list[float], unit: str, digits: int) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}{unit}"
    return f"{med:.{digits}f}{unit} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--source", choices=("git", "folder"), default="git")
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--baseline", type=Path)
    args = parser.parse_args()
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.baseline is not None:
        trees.append((f"baseline {args.baseline}", args.baseline.resolve()))
    with tempfile.TemporaryDirectory() as tmp, LibreServer() as libre:
        for posts in args.posts:
            repo = generate(Path(tmp) / f"repo-{posts}", posts)
            if args.source == "git":
                commit_origin(repo)
            found: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
            for _ in range(args.pairs):
                for name, tree in trees:
                    one = run_idle(repo, args.source, args.seconds, libre.url, tree, Path(tmp))
                    found[name].append(one)
                    print(
                        f"{posts:>6} posts, {name}: ready {one['ready']:.1f} s, settled "
                        f"{one['settled']:.0f} s later; idle "
                        f"{args.seconds} s: CPU {one['cpu']:.2f} %, RSS {one['rss']:.0f} MB "
                        f"(peak {one['peak']:.0f} MB)",
                        flush=True,
                    )
            for name, runs in found.items():
                print(
                    f"{posts:>6} posts, {name}, {len(runs)} run(s): CPU "
                    f"{_fmt([r['cpu'] for r in runs], ' %', 2)}, RSS "
                    f"{_fmt([r['rss'] for r in runs], ' MB', 0)}, ready "
                    f"{_fmt([r['ready'] for r in runs], ' s', 1)}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
