"""The service's clock: APScheduler jobs (sync, sweep, follow-up, watch at fixed intervals,
a sync at once on a webhook, and one job per due instant). Only the clock: what is due is in
the ledger, and jobs are rebuilt from it, never pickled."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

Job = Callable[[], None]
DUE = "due-"
"""How the id of a job at a due instant begins."""


class Clock:
    def __init__(self) -> None:
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def every(self, seconds: float, job: Job, name: str) -> None:
        self.scheduler.add_job(job, IntervalTrigger(seconds=seconds), id=name)

    def start(self) -> None:
        self.scheduler.start()

    def now(self, job: Job, name: str) -> None:
        """Run ``job`` at once on the scheduler's pool; one already waiting is replaced."""
        self.scheduler.add_job(job, id=name, replace_existing=True)

    def at_each(self, instants: Iterable[datetime], job: Job) -> None:
        """One run of ``job`` at each of ``instants`` (those of the ledger's PENDING rows);
        jobs at instants no longer listed are removed."""
        wanted = {f"{DUE}{d.isoformat()}": d for d in instants}
        for existing in self.scheduler.get_jobs():
            if existing.id.startswith(DUE) and existing.id not in wanted:
                existing.remove()
        for job_id, due in wanted.items():
            if self.scheduler.get_job(job_id) is None:
                self.scheduler.add_job(job, DateTrigger(run_date=due), id=job_id)

    def shutdown(self, timeout: float) -> bool:
        """Stop firing, and wait up to ``timeout`` for jobs running; whether they all ended."""
        waiter = threading.Thread(
            target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True
        )
        waiter.start()
        waiter.join(max(0.0, timeout))
        return not waiter.is_alive()
