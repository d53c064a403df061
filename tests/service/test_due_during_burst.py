"""No due trigger is lost (issue 14): a post due while a burst is still being delivered goes
out on time, not after the burst and the next sweep.

``diplobot run`` as a real process on the real clock, publishing to the fake X. The burst is 48
deliveries due at one instant; X answers three of them only after 4 s, so the run delivering
the burst is still under way when the next post falls due, 2 s later. Before the fix, the
trigger at that instant found the run under way and returned: the post waited for the next
sweep (here a minute away).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from servers.x import XServer
from service.conftest import (
    HANDLES,
    ContentRepo,
    ServiceFactory,
    due_in,
    post_yaml,
    sleep_until,
    wait_for,
)

ON_TIME = timedelta(milliseconds=100)
"""How soon after its due instant the post due during the burst must reach X."""
BURST_POSTS = 12  # × 4 accounts
SLOW = 4.0  # seconds X takes to answer the last three requests of the burst


def _posts(x: XServer, text_start: str) -> dict[str, list[dict[str, object]]]:
    return {a: [t for t in x.timeline(a) if str(t["text"]).startswith(text_start)] for a in HANDLES}


def test_a_post_due_during_a_burst_goes_out_within_100_ms_of_its_time(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer
) -> None:
    svc = service(
        DIPLOBOT_SWEEP_INTERVAL="60",  # a lost trigger would wait for the next sweep
        DIPLOBOT_X_TIMEOUT="20",  # the slow answers are slow, not lost
        DIPLOBOT_LOG_LEVEL="WARNING",
    )
    svc.start()
    burst = due_in(5)
    during = burst + timedelta(seconds=2)
    for i in range(BURST_POSTS):
        content_repo.write(
            f"content/posts/rafale-{i:02d}.yaml", post_yaml(f"rafale-{i:02d}", burst, f"Rafale {i}")
        )
    content_repo.write("content/posts/ponctuel.yaml", post_yaml("ponctuel", during, "Ponctuel"))
    rev = content_repo.commit("a burst, and a post due during it")
    wait_for("the commit to be applied", lambda: svc.status()["revision"] == rev)
    assert datetime.now(UTC) < burst - timedelta(seconds=0.5), "applied too late to test"
    burst_size = BURST_POSTS * len(HANDLES)
    # X answers the last three POSTs of the burst after SLOW seconds: the run delivering the
    # burst is still under way at ``during``, with slots free for the post due then.
    x.fail_next("slow", 3, method="POST", path="/2/tweets", seconds=SLOW, after=burst_size - 3)

    sleep_until(during)
    wait_for("the post on every account", lambda: all(_posts(x, "Ponctuel").values()))
    for account, (tweet,) in _posts(x, "Ponctuel").items():
        lag = tweet["created_at"] - during  # type: ignore[operator]
        assert timedelta(0) <= lag <= ON_TIME, f"{account}: reached X {lag} after its due time"

    # It was during the burst: the slow answers had not come yet.
    slow = [r for r in x.requests if r.fault == "slow"]
    assert len(slow) == 3
    answered = min(t["created_at"] for a in HANDLES for t in x.timeline(a)) + timedelta(
        seconds=SLOW
    )
    latest = max(t["created_at"] for (t,) in _posts(x, "Ponctuel").values())
    assert latest < answered  # type: ignore[operator]

    # The burst itself is delivered once each, and nothing twice.
    wait_for(
        "the burst on every account",
        lambda: sum(len(v) for v in _posts(x, "Rafale").values()) == burst_size,
    )
    time.sleep(1.0)
    assert sum(len(v) for v in _posts(x, "Rafale").values()) == burst_size
    assert sum(1 for r in x.requests if r.method == "POST" and r.path == "/2/tweets") == (
        burst_size + len(HANDLES)
    )
    assert x.errors == []
