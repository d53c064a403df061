"""An apply reads the open rows of the posts that changed (and of the deliveries that left
the plan), not every open row: the ledger it leaves is the one reading every open row leaves,
commit after commit — edits, posts moved out of the window and back, deleted, turned into
drafts, sent to fewer languages, a draft armed by ``post-now`` then deleted, and a change of
the accounts file (which reads every open row again)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from publish.conftest import WebhookSink
from servers.translate import LibreServer
from servers.x import XServer
from service.clocked import clocked_service, whole_hour_ahead
from service.conftest import ContentRepo, post_yaml

from bot.service import changes
from bot.state.ledger import Ledger

HOUR = timedelta(hours=1)
Snapshot = list[tuple[str, str, int, str, datetime, str | None]]


def _snapshot(ledger: Ledger) -> Snapshot:
    return sorted(
        (r.post_id, r.account, r.part, r.state.value, r.due_at, r.last_error) for r in ledger.rows()
    )


def _scenario(
    root: Path,
    state: Path,
    x: XServer,
    libre: LibreServer,
    alerts: WebhookSink,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    now: datetime,
) -> tuple[list[Snapshot], int]:
    """Each step's ledger, and how many times an apply read every open row."""
    svc = clocked_service(root, state, x, libre, alerts, monkeypatch)
    full_reads = 0
    real_rows = svc.ledger.rows

    def counting_rows(post_id: str | None = None, **kw: object) -> object:
        nonlocal full_reads
        if post_id is None and len(kw.get("states") or ()) == 4:  # cancel_removed's read
            full_reads += 1
        return real_rows(post_id, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(svc.ledger, "rows", counting_rows)

    def write(name: str, body: str) -> None:
        (root / "content/posts" / f"{name}.yaml").write_text(body, encoding="utf-8")

    def languages(name: str, langs: str) -> None:
        path = root / "content/posts" / f"{name}.yaml"
        body = path.read_text(encoding="utf-8")
        write(name, body.replace("lang: fr\n", f"lang: fr\nlanguages: [{langs}]\n", 1))

    def arm_by_hand(name: str) -> None:
        """``post-now`` of a draft, rate-limited on the French account: its row waits."""
        reset = int((now + 5 * HOUR).timestamp())
        x.fail_next("429", method="POST", path="/2/tweets", reset=reset)
        svc.cli(capsys, now - HOUR, "post-now", name, "--account", "francediplo")

    for n in range(8):
        write(f"p{n}", post_yaml(f"p{n}", now + (n + 1) * HOUR, f"Texte {n}"))
    write("brouillon", post_yaml("brouillon", None, "Brouillon"))
    steps: list[Callable[[], object]] = [
        lambda: None,
        lambda: write("p0", post_yaml("p0", now + HOUR, "Texte 0 modifié")),
        lambda: write("p1", post_yaml("p1", now + 30 * 24 * HOUR, "Texte 1")),  # out
        lambda: (root / "content/posts/p2.yaml").unlink(),  # deleted
        lambda: write("p3", post_yaml("p3", None, "Texte 3")),  # a draft now
        lambda: languages("p4", "fr, en"),  # fewer languages
        lambda: write("p1", post_yaml("p1", now + 2 * HOUR, "Texte 1")),  # back in
        lambda: arm_by_hand("brouillon"),
        lambda: (root / "content/posts/brouillon.yaml").unlink(),
        lambda: write("p5", post_yaml("p5", now + 7 * HOUR, "Texte 5 bis")),
        lambda: (root / "schedules/accounts.yaml").write_text(
            (root / "schedules/accounts.yaml")
            .read_text(encoding="utf-8")
            .replace("Europe/Paris", "Europe/Berlin", 1),
            encoding="utf-8",
        ),
        lambda: write("p6", post_yaml("p6", now + 9 * HOUR, "Texte 6 bis")),
    ]
    seen = []
    for n, step in enumerate(steps):
        step()
        svc.sync(now - HOUR + n * timedelta(minutes=2))
        seen.append(_snapshot(svc.ledger))
    return seen, full_reads


def test_an_apply_reading_the_changed_posts_leaves_the_ledger_reading_every_row_leaves(
    content_repo: ContentRepo,
    x: XServer,
    libre: LibreServer,
    alerts: WebhookSink,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    now = whole_hour_ahead()
    roots = [tmp_path / "bounded", tmp_path / "every-row"]
    for root in roots:
        shutil.copytree(content_repo.path, root)
    bounded, bounded_reads = _scenario(
        roots[0], tmp_path / "s1", x, libre, alerts, monkeypatch, capsys, now
    )
    monkeypatch.setattr(changes, "TOUCHED_MAX", -1)  # every apply reads every open row
    every, every_reads = _scenario(
        roots[1], tmp_path / "s2", x, libre, alerts, monkeypatch, capsys, now
    )
    assert bounded == every
    # The steps did what they say (rows moved, cancelled), so the comparison means something.
    last = {(p, a, s) for p, a, _part, s, _due, _err in bounded[-1]}
    assert ("p2", "francediplo", "RETRACTED") in last
    assert ("p3", "francediplo", "RETRACTED") in last
    assert ("brouillon", "francediplo", "RETRACTED") in last
    armed = {(p, a, s) for p, a, _part, s, _due, _err in bounded[7]}
    assert ("brouillon", "francediplo", "PENDING") in armed
    assert ("p4", "francediplo_AR", "RETRACTED") in last
    assert any(p == "p1" and s == "PENDING" for p, _a, s in last)
    # The first apply and the accounts change read every open row; the others did not.
    assert bounded_reads == 2
    assert every_reads == len(bounded) - 1  # post-now changes no file: nothing to apply
