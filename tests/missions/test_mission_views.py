"""``/status?mission=`` and ``/metrics`` per mission, read from a real SQLite ledger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.content.loader import load
from bot.service import Service, views
from bot.settings import ServiceSettings
from bot.source import LocalSource
from bot.state import open_store
from bot.state.ledger import NewDelivery


def _service(repo: Path, tmp_path: Path, url: str | None = None) -> Service:
    store = open_store(url or f"sqlite:///{tmp_path / 'state.sqlite'}")
    service = Service(LocalSource(repo), store, repo, ServiceSettings())
    service.content = load(repo)  # as an apply of this revision leaves it
    due = datetime.now(UTC) + timedelta(hours=1)
    service.ledger.ensure(
        [
            NewDelivery(
                post_id=post,
                account=account,
                part=1,
                channel="outbox",
                lang="fr",
                due_at=due,
                text="",
            )
            for post, account in (
                ("bilan-cop31", "francediplo"),
                ("bilan-cop31", "francediplo_EN"),
                ("ambassade-chine/2026/12/visas-etudiants", "ambachine_fr"),
                ("ambassade-chine/2026/12/visas-etudiants", "ambachine_zh"),
            )
        ]
    )
    return service


def test_status_of_one_mission_shows_only_its_accounts(
    full_example: Path, tmp_path: Path, state_url: str
) -> None:
    """On SQLite and on PostgreSQL: the page is chosen in the query."""
    service = _service(full_example, tmp_path, state_url)
    mine = views.status(service, mission="ambassade-chine")
    assert mine["mission"] == "ambassade-chine"
    assert mine["counts"] == {"PENDING": {"ambachine_fr": 1, "ambachine_zh": 1}}
    assert {r["account"] for r in mine["upcoming"]} == {"ambachine_fr", "ambachine_zh"}
    # A page is a page of the mission's rows, not a filtered page of everyone's.
    one = views.status(service, limit=1, offset=1, mission="ambassade-chine")
    assert [r["account"] for r in one["upcoming"]] == ["ambachine_zh"]
    central = views.status(service, mission="central")
    assert central["counts"] == {"PENDING": {"francediplo": 1, "francediplo_EN": 1}}
    every = views.status(service)
    assert "mission" not in every and len(every["upcoming"]) == 4
    with pytest.raises(KeyError, match="no mission 'consulat'; missions: central, ambassade"):
        views.status(service, mission="consulat")


def _deliveries(text: bytes) -> dict[str, tuple[str, float]]:
    return {
        s.labels["account"]: (s.labels["mission"], s.value)
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
        if s.name == "diplobot_deliveries"
    }


def test_metrics_label_each_account_with_its_mission(full_example: Path, tmp_path: Path) -> None:
    service = _service(full_example, tmp_path)
    assert _deliveries(views.metrics(service)) == {
        "francediplo": ("central", 1),
        "francediplo_EN": ("central", 1),
        "ambachine_fr": ("ambassade-chine", 1),
        "ambachine_zh": ("ambassade-chine", 1),
    }
    assert _deliveries(views.metrics(service, "ambassade-chine")) == {
        "ambachine_fr": ("ambassade-chine", 1),
        "ambachine_zh": ("ambassade-chine", 1),
    }
    with pytest.raises(KeyError):
        views.metrics(service, "consulat")
    # The watch's per-account figure says the mission too (as a sweep counts them).
    with service.watcher.lock:
        service.watcher.counts.update({"ambachine_zh": 2, "francediplo": 1})
    foreign = {
        s.labels["account"]: s.labels["mission"]
        for family in text_string_to_metric_families(
            views.metrics(service, "ambassade-chine").decode()
        )
        for s in family.samples
        if s.name == "diplobot_foreign_posts_total"
    }
    assert foreign == {"ambachine_zh": "ambassade-chine"}


def test_status_command_of_one_mission(
    full_example: Path, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    _service(full_example, tmp_path)
    args = ("status", "--root", str(full_example), "--state", str(tmp_path / "state.sqlite"))
    lines = run_cli(*args, "--mission", "ambassade-chine").out.splitlines()
    assert [line.split()[6] for line in lines] == ["ambachine_fr", "ambachine_zh"]
    assert len(run_cli(*args).out.splitlines()) == 4
    assert run_cli(*args, "--mission", "consulat").code == 2


def test_preview_of_one_mission(
    full_example: Path, tmp_path: Path, run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``preview --mission``: its accounts and the posts they publish (its own, and the
    central post it amplifies), its images from its own folder."""
    monkeypatch.setenv("DIPLOBOT_TRANSLATOR", "libre")
    monkeypatch.setenv("DIPLOBOT_TRANSLATOR_URL", "http://127.0.0.1:9")  # nobody: awaiting
    out = tmp_path / "site"
    result = run_cli(
        "preview", "--root", str(full_example), "--state", str(tmp_path / "s.sqlite"),
        "--out", str(out), "--from", "2026-11-20 08:00", "--days", "30",
        "--mission", "ambassade-chine",
    )  # fmt: skip
    assert result.code == 0, result.err
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "@AmbaFranceChine" in index and "@faguodashiguan" in index
    assert "@francediplo_EN" not in index and "@ambafrancechine" not in index
    pages = sorted(p.name.rsplit("-", 1)[0] for p in out.glob("post-*.html"))
    assert pages == [
        "post-ambassade-chine_2026_12_visas-etudiants",
        "post-ambassade-chine_queue_residence-artistes",
        "post-bilan-cop31",
    ]
    assert (out / "files/missions/ambassade-chine/media/drapeau.png").is_file()
