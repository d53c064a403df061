"""Benchmark: the ledger's own cost per delivery — the claim and the outcome, nothing sent.

Run:  .venv/bin/python bench/bench_ledger.py [--deliveries 504] [--threads 1 16]
          [--state sqlite|postgresql|URL] [--rounds 3]

Every delivery the service publishes writes two durable transactions before and after the
request: the claim (PENDING → SENDING, fenced by the service's lease) and the outcome
(SENDING → POSTED with the remote id). This records ``--deliveries`` due rows, then claims and
marks each POSTED, in one thread or spread over ``--threads`` (the service's publish pool,
whose transactions the ledger commits together), with the lease held as a service holds it,
and prints this process's CPU (user and system) per delivery. It is the floor under
``bench_service.py burst``'s "service CPU per delivery" that no dispatch change removes
without giving up writing each delivery's claim and outcome before going on (what keeps a
post from going out twice after a crash).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "tests")]

from bench.state import KINDS, server_cpu, state_for  # noqa: E402


def one_round(state: str, deliveries: int, threads: int) -> dict[str, float]:
    """CPU of ``deliveries`` claims and outcomes over ``threads`` threads (ms a delivery)."""
    from bot.state import open_store
    from bot.state.ledger import NewDelivery, Row, State

    with tempfile.TemporaryDirectory() as tmp, state_for(state, Path(tmp)) as (url, server):
        store = open_store(url)
        try:
            lease = store.service_lease(timedelta(seconds=60))
            assert lease.poll() is not None and lease.valid(), "the lease could not be taken"
            ledger = store.ledger
            ledger.fence = lease  # as the service: every claim needs the lease
            due = datetime.now(UTC) - timedelta(seconds=1)
            rows = ledger.ensure(
                NewDelivery(f"p{i:04d}", f"fr_{i % 8}", 1, "x", "fr", due, f"Annonce {i}")
                for i in range(deliveries)
            )
            shares = [rows[k::threads] for k in range(threads)]
            failed: list[str] = []

            def work(share: list[Row]) -> None:
                for row in share:
                    if ledger.claim(row.id, datetime.now(UTC)) is None:
                        failed.append(f"{row.id} not claimed")
                    elif not ledger.transition(
                        row.id, State.POSTED, expect=[State.SENDING], remote_id=f"r{row.id}"
                    ):
                        failed.append(f"{row.id} not marked POSTED")

            db0 = server_cpu(server) if server is not None else 0.0
            ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            pool = [threading.Thread(target=work, args=(share,)) for share in shares]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            wall = time.perf_counter() - t0
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            db = server_cpu(server) - db0 if server is not None else 0.0
            assert not failed, failed[:5]
            posted = ledger.counts()
            assert sum(n for (s, _), n in posted.items() if s is State.POSTED) == deliveries
        finally:
            store.close()
    per = 1000 / deliveries
    return {
        "user": (ru1.ru_utime - ru0.ru_utime) * per,
        "sys": (ru1.ru_stime - ru0.ru_stime) * per,
        "wall": wall * per,
        "db": db * per,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=504)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--state", default="sqlite", help=KINDS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for threads in args.threads:
        found = [one_round(args.state, args.deliveries, threads) for _ in range(args.rounds)]
        cpu = [f["user"] + f["sys"] for f in found]
        median = sorted(range(len(cpu)), key=cpu.__getitem__)[len(cpu) // 2]
        print(
            f"{args.deliveries} deliveries, {threads:2d} thread(s), {args.state}: CPU "
            f"{cpu[median]:.3f} ms a delivery (user {found[median]['user']:.3f}, system "
            f"{found[median]['sys']:.3f}; {min(cpu):.3f}–{max(cpu):.3f} over {len(cpu)} rounds), "
            f"wall {found[median]['wall']:.3f} ms a delivery"
            + (f", server {found[median]['db']:.3f} ms" if args.state != "sqlite" else "")
        )


if __name__ == "__main__":
    main()
