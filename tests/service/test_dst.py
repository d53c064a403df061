"""DST with a controlled clock: a daily 02:30 Europe/Paris slot, run by the service itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from bot.service import Service
from bot.settings import ServiceSettings
from bot.source import LocalSource
from bot.state import open_store, state_url
from bot.state.ledger import State

ACCOUNTS = "timezone: Europe/Paris\naccounts:\n  fr_acct: {lang: fr, handle: francediplo}\n"
SLOTS = "slots:\n  night: {times: [02:30]}\n"


def make_repo(root: Path) -> Path:
    (root / "schedules").mkdir(parents=True)
    (root / "schedules/accounts.yaml").write_text(ACCOUNTS, encoding="utf-8")
    (root / "schedules/slots.yaml").write_text(SLOTS, encoding="utf-8")
    (root / "content/posts").mkdir(parents=True)
    (root / "content/posts/nuit.yaml").write_text(
        "lang: fr\nslot: night\ntext: Annonce de nuit\n", encoding="utf-8"
    )
    return root


@pytest.mark.parametrize(
    ("start", "due_utc", "local"),
    [
        # 29 March 2026: clocks jump 02:00 → 03:00; the slot runs one gap later, 03:30 CEST.
        (
            datetime(2026, 3, 28, 12, 0, tzinfo=UTC),
            datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
            "03:30",
        ),
        # 25 October 2026: 02:30 happens twice; the slot takes the first one (CEST).
        (
            datetime(2026, 10, 24, 12, 0, tzinfo=UTC),
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            "02:30",
        ),
    ],
)
def test_service_publishes_a_0230_slot_across_dst_as_documented(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start: datetime,
    due_utc: datetime,
    local: str,
) -> None:
    """The service records the slot at the documented instant and publishes it then, once."""
    for name in ("DIPLOBOT_X_API_KEY", "DIPLOBOT_X_API_SECRET", "DIPLOBOT_ALERT_WEBHOOK"):
        monkeypatch.delenv(name, raising=False)
    root = make_repo(tmp_path / "repo")
    store = open_store(state_url(root, None))
    with time_machine.travel(start, tick=False):
        service = Service(LocalSource(root), store, root / ".diplobot", ServiceSettings())
        service.sync()
        rows = service.ledger.rows("nuit")
        assert [(r.state, r.due_at) for r in rows] == [(State.PENDING, due_utc)]
        local_time = due_utc.astimezone(service.content.account_zone("fr_acct"))  # type: ignore[union-attr]
        assert f"{local_time:%H:%M}" == local
        service.run_due()  # not yet due: nothing happens
        assert service.ledger.rows("nuit")[0].state is State.PENDING
    with time_machine.travel(due_utc, tick=False):
        service.run_due()
        service.run_due()
    assert [r.state for r in service.ledger.rows("nuit")] == [State.POSTED]
    outbox = (root / ".diplobot/outbox.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["text"] for line in outbox] == ["Annonce de nuit"]
