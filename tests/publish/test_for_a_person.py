"""What only a person can settle, through a real Deliverer on a real SQLite ledger:

- Telegram cannot be searched: a send whose outcome is unknown stays UNKNOWN, alerted once
  with what to check, never sent again by itself; ``mark-posted`` records it POSTED, and
  ``post-now --resend`` sends it again when a person found it is not there;
- Weibo is a manual channel: at its due time a delivery becomes a task for a person (alerted
  with the Chinese text and the images), ``mark-posted`` records it once, and it expires.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from servers.telegram import Chat, TelegramServer, token_for
from servers.x import XServer

from bot.cli import main
from bot.errors import ConfigError
from bot.platforms.telegram import TelegramPublisher
from bot.platforms.weibo import WeiboPublisher
from bot.publish.deliver import NEEDS_PERSON, TASK, Deliverer, for_a_person, recover
from bot.publish.manual import mark_posted
from bot.settings import Secret
from bot.state import open_store, state_url
from bot.state.ledger import Instance, Ledger, MediaRef, NewDelivery, Row, State

ES = "francediplo_ES"
ZH = "france_weibo"
TOKEN = token_for(7012345678, "CANARYtgD")
CHANNEL = Chat(-1001234567890, "francediplo_es", "Francia en español", admins={7012345678})
ZH_TEXT = "法国外交部欢迎在贝伦举行的第三十届联合国气候变化大会达成的协议。#COP31"


class Alerts:
    def __init__(self) -> None:
        self.seen: list[tuple[Row, str]] = []

    def __call__(self, row: Row, reason: str) -> None:
        self.seen.append((row, reason))


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return open_store(state_url(tmp_path, None)).ledger


@pytest.fixture
def telegram() -> Iterator[TelegramServer]:
    with TelegramServer({TOKEN: (7012345678, "diplobot_es_bot")}, [CHANNEL]) as server:
        yield server
        assert not server.errors


def _telegram_deliverer(
    ledger: Ledger, server: TelegramServer, root: Path, alerts: Alerts
) -> Deliverer:
    publisher = TelegramPublisher(
        {ES: Secret(TOKEN)},
        {ES: "@francediplo_es"},
        {ES: "francediplo_es"},
        api_url=server.url.rstrip("/"),
        timeout=0.5,
    )
    return Deliverer(
        ledger, publisher, root, {ES: "francediplo_es"}, alert=alerts, platforms={ES: "telegram"}
    )


def _record(ledger: Ledger, account: str, channel: str, text: str, **kw: object) -> Row:
    [row] = ledger.ensure(
        [NewDelivery("cop31", account, 1, channel, "es", datetime.now(UTC), text, **kw)]  # type: ignore[arg-type]
    )
    return row


# -- Telegram ---------------------------------------------------------------------------------


def test_an_unknown_telegram_send_waits_for_a_person_told_once(
    ledger: Ledger, telegram: TelegramServer, tmp_path: Path
) -> None:
    alerts = Alerts()
    deliverer = _telegram_deliverer(ledger, telegram, tmp_path, alerts)
    row = _record(ledger, ES, "telegram", "Acuerdo en Belém")
    telegram.fail_next("drop_after_store", method="sendMessage")

    [done] = deliverer.deliver_chain([row])
    assert done.state is State.UNKNOWN and for_a_person(done)
    assert (done.last_error or "").startswith(NEEDS_PERSON)
    assert len(telegram.stored(CHANNEL.id)) == 1
    [(alerted, reason)] = alerts.seen
    assert alerted.id == row.id
    assert "https://t.me/francediplo_es" in reason
    assert f"diplobot mark-posted cop31 --account {ES} --url URL" in reason
    assert f"diplobot post-now cop31 --account {ES} --resend" in reason
    assert "Acuerdo" not in reason  # the text is not in an error message

    # Every later sweep, even one that looks UNKNOWN rows up at once: nothing is sent, no
    # second alert, no FAILED after hours.
    for _ in range(3):
        [again] = deliverer.deliver_chain([ledger.get(row.id)], look_now=True)
        assert again.state is State.UNKNOWN
    later = Deliverer(
        ledger,
        deliverer.publisher,
        tmp_path,
        deliverer.handles,
        alert=alerts,
        clock=lambda: datetime.now(UTC) + timedelta(hours=30),
        platforms=deliverer.platforms,
    )
    assert later.deliver_chain([ledger.get(row.id)])[0].state is State.UNKNOWN
    assert len(alerts.seen) == 1
    assert len(telegram.sends()) == 1
    assert ledger.get(row.id).attempts == 1


def test_mark_posted_records_it_once(
    ledger: Ledger, telegram: TelegramServer, tmp_path: Path
) -> None:
    deliverer = _telegram_deliverer(ledger, telegram, tmp_path, Alerts())
    row = _record(ledger, ES, "telegram", "Acuerdo en Belém")
    telegram.fail_next("500", method="sendMessage")
    deliverer.deliver_chain([row])
    url = "https://t.me/francediplo_es/4242"

    with pytest.raises(ConfigError, match=r"t\.me"):
        mark_posted(ledger, [ledger.get(row.id)], platform="telegram", url="https://x.com/a/1")
    with pytest.raises(ConfigError, match="number"):
        mark_posted(ledger, [ledger.get(row.id)], platform="telegram", url="https://t.me/chan")
    marked = mark_posted(ledger, [ledger.get(row.id)], platform="telegram", url=url)
    assert marked.ok and marked.row is not None
    posted = ledger.get(row.id)
    assert (posted.state, posted.remote_id, posted.url) == (State.POSTED, "4242", url)
    assert posted.last_error is None

    again = mark_posted(ledger, [posted], platform="telegram", url=url)
    assert again.ok and "already POSTED" in again.message
    other = mark_posted(ledger, [posted], platform="telegram", url=url.replace("4242", "4243"))
    assert not other.ok and "nothing changed" in other.message
    assert ledger.get(row.id) == posted
    assert len(telegram.sends()) == 1


def test_resend_sends_again_what_a_person_found_missing(
    ledger: Ledger, telegram: TelegramServer, tmp_path: Path
) -> None:
    alerts = Alerts()
    deliverer = _telegram_deliverer(ledger, telegram, tmp_path, alerts)
    row = _record(ledger, ES, "telegram", "Acuerdo en Belém")
    telegram.fail_next("drop", method="sendMessage")  # it never arrived
    deliverer.deliver_chain([row])
    assert telegram.stored(CHANNEL.id) == []

    lines = deliverer.resend([ledger.get(row.id)], datetime.now(UTC))
    assert lines == ["part 1 was UNKNOWN: sending it again, as asked"]
    [done] = deliverer.deliver_chain([ledger.get(row.id)])
    assert done.state is State.POSTED
    [stored] = telegram.stored(CHANNEL.id)
    assert done.remote_id == str(stored.message_id)
    assert done.url == f"https://t.me/francediplo_es/{stored.message_id}"


def test_a_refused_telegram_row_is_rearmed_without_a_search(
    ledger: Ledger, telegram: TelegramServer, tmp_path: Path
) -> None:
    """post-now on a FAILED row looks it up first; Telegram cannot be searched, and a row
    there only ends FAILED after an answer that was known: it is sent again."""
    deliverer = _telegram_deliverer(ledger, telegram, tmp_path, Alerts())
    row = _record(ledger, ES, "telegram", "Acuerdo en Belém")
    telegram.fail_next("400", method="sendMessage")
    assert deliverer.deliver_chain([row])[0].state is State.FAILED
    assert deliverer.rearm([ledger.get(row.id)], datetime.now(UTC)) == [
        "part 1 was FAILED (Telegram refused the message (400): Peer_id_invalid): trying again"
    ]
    assert deliverer.deliver_chain([ledger.get(row.id)])[0].state is State.POSTED


def test_a_telegram_send_cut_by_a_crash_waits_for_a_person(
    tmp_path: Path, telegram: TelegramServer
) -> None:
    """A process died while SENDING (claimed, maybe sent): recovered UNKNOWN, for a person,
    alerted once; nothing is sent by the recovery. A Weibo claim that died made no task yet:
    it is made, once."""
    store = open_store(state_url(tmp_path, None), lease=timedelta(seconds=1))
    dead = store.ledger_as(Instance("deadbeef0001", "elsewhere", 4_000_001, "pid:[1]"))
    items = [
        NewDelivery("cop31", ES, 1, "telegram", "es", datetime.now(UTC), "Acuerdo"),
        NewDelivery("cop31", ZH, 1, "weibo", "zh-Hans", datetime.now(UTC), ZH_TEXT),
    ]
    rows = store.ledger.ensure(items)
    for row in rows:
        assert dead.claim(row.id, datetime.now(UTC) - timedelta(minutes=5)) is not None
    alerts = Alerts()
    deliverers = {
        "telegram": _telegram_deliverer(store.ledger, telegram, tmp_path, alerts),
        "weibo": _weibo(store.ledger, tmp_path, alerts),
    }
    recovered = {r.channel: r for r in recover(store.ledger, deliverers, datetime.now(UTC))}
    assert recovered["telegram"].state is State.UNKNOWN and for_a_person(recovered["telegram"])
    assert "stopped" in (recovered["telegram"].last_error or "")
    assert recovered["weibo"].state is State.PENDING  # no task was recorded: not a person's yet
    [weibo] = deliverers["weibo"].deliver_chain([store.ledger.get(recovered["weibo"].id)])
    assert weibo.state is State.PENDING and weibo.retry_at is not None  # its back-off
    store.ledger.rearm(weibo.id, expect=[State.PENDING], due=weibo.due_at, attempts_at_most=1)
    [task] = deliverers["weibo"].deliver_chain([store.ledger.get(weibo.id)])
    assert task.state is State.UNKNOWN and (task.last_error or "").startswith(TASK)
    assert [r.channel for r, _ in alerts.seen] == ["telegram", "weibo"]
    assert telegram.calls == []


# -- Weibo ------------------------------------------------------------------------------------


def _weibo(ledger: Ledger, root: Path, alerts: Alerts, *, hours: float = 0) -> Deliverer:
    return Deliverer(
        ledger,
        WeiboPublisher({ZH: "franceweibo"}, timedelta(hours=24)),
        root,
        {ZH: "franceweibo"},
        alert=alerts,
        clock=lambda: datetime.now(UTC) + timedelta(hours=hours),
        platforms={ZH: "weibo"},
    )


def _task(ledger: Ledger, tmp_path: Path) -> tuple[Row, Alerts]:
    alerts = Alerts()
    media = (MediaRef("media/cop31.png", "贝伦会场"),)
    row = _record(ledger, ZH, "weibo", ZH_TEXT, media=media)
    [done] = _weibo(ledger, tmp_path, alerts).deliver_chain([row])
    return done, alerts


def test_a_weibo_delivery_becomes_a_task_with_the_text_and_images(
    ledger: Ledger, tmp_path: Path
) -> None:
    before = datetime.now(UTC)
    task, alerts = _task(ledger, tmp_path)
    assert task.state is State.UNKNOWN and for_a_person(task)
    assert (task.last_error or "").startswith(TASK)
    assert f"diplobot mark-posted cop31 --account {ZH} --url URL" in (task.last_error or "")
    assert task.retry_at is not None
    assert before + timedelta(hours=24) <= task.retry_at <= datetime.now(UTC) + timedelta(hours=24)
    [(alerted, reason)] = alerts.seen
    assert alerted.state is State.UNKNOWN
    assert ZH_TEXT in reason
    assert str(tmp_path / "media/cop31.png") in reason and "贝伦会场" in reason
    assert "Weibo" in reason and "@franceweibo" in reason

    # Before its window ends, sweeps (and post-now's look_now) leave it as it is.
    for hours in (0, 1, 23):
        deliverer = _weibo(ledger, tmp_path, alerts, hours=hours)
        [again] = deliverer.deliver_chain([ledger.get(task.id)], look_now=True)
        assert again == ledger.get(task.id) and again.state is State.UNKNOWN
    assert len(alerts.seen) == 1
    assert ledger.get(task.id).attempts == 1


def test_mark_posted_ends_the_task_and_never_records_twice(ledger: Ledger, tmp_path: Path) -> None:
    task, alerts = _task(ledger, tmp_path)
    url = "https://weibo.com/5233410543/PzAbCdEf1"
    with pytest.raises(ConfigError, match="weibo"):
        mark_posted(ledger, [task], platform="weibo", url="https://t.me/x/1")
    marked = mark_posted(ledger, [task], platform="weibo", url=url)
    assert marked.ok
    posted = ledger.get(task.id)
    assert (posted.state, posted.remote_id, posted.url) == (State.POSTED, "PzAbCdEf1", url)
    assert mark_posted(ledger, [posted], platform="weibo", url=url).ok
    assert ledger.get(task.id) == posted
    # The sweep after the window: a POSTED row is not touched.
    deliverer = _weibo(ledger, tmp_path, alerts, hours=30)
    assert deliverer.deliver_chain([posted], look_now=True)[0] == posted
    assert [r.state for r in ledger.rows("cop31")] == [State.POSTED]
    assert len(alerts.seen) == 1


def test_an_open_task_expires_after_its_window(ledger: Ledger, tmp_path: Path) -> None:
    task, alerts = _task(ledger, tmp_path)
    [expired] = _weibo(ledger, tmp_path, alerts, hours=25).deliver_chain([task])
    assert expired.state is State.EXPIRED and not for_a_person(expired)
    assert "task expired" in (expired.last_error or "")
    assert [r.state for r, _ in alerts.seen] == [State.UNKNOWN, State.EXPIRED]
    assert "mark-posted" in alerts.seen[-1][1]
    # Posted after all: still recorded, once.
    assert mark_posted(ledger, [expired], platform="weibo", url="https://weibo.com/1/Ab").ok
    assert ledger.get(task.id).state is State.POSTED


def test_mark_posted_refuses_what_is_not_waiting_for_a_person(
    ledger: Ledger, tmp_path: Path
) -> None:
    row = _record(ledger, ZH, "weibo", ZH_TEXT)  # PENDING: not due yet
    marked = mark_posted(ledger, [row], platform="weibo", url="https://weibo.com/1/Ab")
    assert not marked.ok and "PENDING" in marked.message
    assert ledger.get(row.id).state is State.PENDING


# -- the commands -----------------------------------------------------------------------------


def _weibo_es(repo: Path) -> list[str]:
    """The example with its Spanish account on Weibo; the --root option."""
    accounts_file = repo / "schedules" / "accounts.yaml"
    accounts = yaml.safe_load(accounts_file.read_text(encoding="utf-8"))
    accounts["accounts"][ES] = {"lang": "es", "platform": "weibo", "handle": "franceweibo"}
    accounts_file.write_text(yaml.safe_dump(accounts, allow_unicode=True), encoding="utf-8")
    return ["--root", str(repo)]


def test_the_commands_settle_a_weibo_task_and_status_shows_it(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """post-now makes the task (no credentials needed), status shows it for a person,
    mark-posted records it, a second mark-posted changes nothing; retract cannot delete on
    Weibo and says so."""
    root = _weibo_es(repo)

    assert main(["post-now", *root, "entretien-liban", "--account", ES]) == 1
    out = capsys.readouterr().out
    assert "(weibo): part 1 UNKNOWN task for a person: post it by hand on Weibo" in out
    assert live.timeline(ES) == []  # nothing went to X

    assert main(["status", *root, "entretien-liban"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"{ES} \[weibo\]  UNKNOWN \(FOR A PERSON\)  attempts 1  task for", out)
    assert "1 of them wait for a person" in out

    url = "https://weibo.com/5233410543/PzAbCdEf1"
    assert main(["mark-posted", *root, "entretien-liban", "--account", ES, "--url", url]) == 0
    assert "POSTED as https://weibo.com/5233410543/PzAbCdEf1" in capsys.readouterr().out
    assert main(["mark-posted", *root, "entretien-liban", "--account", ES, "--url", url]) == 0
    assert "already POSTED" in capsys.readouterr().out
    assert main(["status", *root, "entretien-liban", "--format", "json"]) == 0
    [row] = [r for r in yaml.safe_load(capsys.readouterr().out) if r["account"] == ES]
    assert (row["state"], row["url"], row["for_a_person"]) == ("POSTED", url, False)

    assert main(["retract", *root, "entretien-liban", "--lang", "es", "--yes"]) == 1
    assert "delete post PzAbCdEf1 of @franceweibo on weibo.com yourself" in capsys.readouterr().out

    assert main(["post-now", *root, "entretien-liban", "--resend"]) == 2
    assert "--resend needs --account" in capsys.readouterr().err
    assert main(["mark-posted", *root, "entretien-liban", "--account", "nobody", "--url", url]) == 2


def test_retract_withdraws_an_open_task(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _weibo_es(repo)
    assert main(["post-now", *root, "entretien-liban", "--account", ES]) == 1
    assert main(["retract", *root, "entretien-liban", "--lang", "es", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "task cancelled (if it was already posted on Weibo, delete it there by hand)" in out
    assert main(["status", *root, "entretien-liban", "--format", "json"]) == 0
    [row] = [r for r in yaml.safe_load(capsys.readouterr().out) if r["account"] == ES]
    assert row["state"] == "RETRACTED"
    assert (
        main(
            [
                "mark-posted",
                *root,
                "entretien-liban",
                "--account",
                ES,
                "--url",
                "https://weibo.com/1/A",
            ]
        )
        == 1
    )


def test_status_lists_what_waits_for_a_person(tmp_path: Path) -> None:
    """/status shows the task with its text and images, and the Telegram row to check."""
    from bot.service import Service, views
    from bot.settings import ServiceSettings
    from bot.source import LocalSource

    (tmp_path / "schedules").mkdir()
    store = open_store(f"sqlite:///{tmp_path / 'state.sqlite'}")
    service = Service(LocalSource(tmp_path), store, tmp_path, ServiceSettings())
    task, _alerts = _task(store.ledger, tmp_path)
    plain = _record(store.ledger, ES, "x", "Acuerdo")  # PENDING: nobody's task
    status = views.status(service)
    [waiting] = status["for_a_person"]
    assert (waiting["post"], waiting["account"], waiting["state"]) == ("cop31", ZH, "UNKNOWN")
    assert waiting["error"] == task.last_error
    assert waiting["text"] == ZH_TEXT and waiting["media"] == ["media/cop31.png"]
    assert waiting["error"].startswith(TASK) and waiting["for_a_person"] is True
    [open_row] = status["open"]
    assert open_row["for_a_person"] is True
    assert [r["for_a_person"] for r in status["upcoming"]] == [False]
    assert status["upcoming"][0]["post"] == plain.post_id
