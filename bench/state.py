"""The state database a benchmark runs on: ``--state sqlite|postgresql|URL``.

``sqlite``: a file in the benchmark's folder. ``postgresql``: a PostgreSQL server started for
the benchmark from the machine's server binaries, as the tests start theirs
(``tests/servers/postgres.py``), but durable — every commit synced to disk, as a production
server and SQLite's ``synchronous=FULL`` — with an empty database. A URL: that (empty)
database. ``server_cpu`` reads the PostgreSQL server's own CPU time, which the benchmark's
process does not count.

    with state_for(args.state, folder) as (url, server):
        store = open_store(url)
        ...
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
if str(HERE / "tests") not in sys.path:
    sys.path[:0] = [str(HERE), str(HERE / "tests")]

from servers.postgres import PostgresServer, find_bindir  # noqa: E402

KINDS = "sqlite (default: a file), postgresql (a throwaway durable server), or a state URL"


@contextmanager
def state_for(kind: str, folder: Path) -> Iterator[tuple[str, PostgresServer | None]]:
    """The state URL for ``kind`` (and the server started for it, stopped on exit)."""
    if kind == "sqlite":
        yield f"sqlite:///{(folder / 'state.sqlite').resolve()}", None
        return
    if kind != "postgresql":
        yield kind, None
        return
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL server binaries: install Debian's postgresql package")
    server = PostgresServer(bindir, durable=True).start()
    try:
        yield server.url(server.create_database()), server
    finally:
        server.stop()


def server_cpu(server: PostgresServer) -> float:
    """CPU seconds used so far by ``server`` (its postmaster, the children it reaped and
    those still running), read from /proc."""
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == postmaster:  # utime, stime, and those of its reaped children
            total += sum(int(f) for f in fields[11:15]) / ticks
        elif int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total
