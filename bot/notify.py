"""Alerts: every delivery that will not go out as planned is told to people.

``DIPLOBOT_ALERT_WEBHOOK`` receives a JSON POST per alert. The body carries ``text`` (what Slack
and Mattermost incoming webhooks display) and the same facts as fields for other tools. A
webhook that fails is logged, never raised: alerting must not stop publishing.
"""

from __future__ import annotations

from typing import Any

import requests
from loguru import logger

from bot.config import read_secret
from bot.schedule.ledger import Row


class Notifier:
    def __init__(
        self,
        webhook: str | None = None,
        timeout: float = 10.0,
        handles: dict[str, str] | None = None,
    ) -> None:
        self.webhook = webhook
        self.timeout = timeout
        self.handles = handles or {}

    @classmethod
    def from_env(cls, handles: dict[str, str]) -> Notifier:
        url = read_secret("DIPLOBOT_ALERT_WEBHOOK")  # or _FILE: a webhook URL is a secret
        return cls(url.reveal() if url else None, handles=handles)

    def delivery(self, row: Row, reason: str) -> None:
        handle = self.handles.get(row.account, row.account)
        self.send(
            {
                "text": f"diplobot: {row.post_id} part {row.part} for @{handle} is {row.state}: "
                f"{reason}",
                "event": f"delivery.{row.state.lower()}",
                "post": row.post_id,
                "account": row.account,
                "part": row.part,
                "state": str(row.state),
                "reason": reason,
            }
        )

    def held(self, post_id: str, account: str, reason: str) -> None:
        handle = self.handles.get(account, account)
        self.send(
            {
                "text": f"diplobot: {post_id} for @{handle} is held: {reason}",
                "event": "delivery.held",
                "post": post_id,
                "account": account,
                "state": "HELD",
                "reason": reason,
            }
        )

    def sync_failed(self, error: str, revision: str | None) -> None:
        """The content source cannot be read (told once, until it can be again)."""
        running = f"still running revision {revision}" if revision else "no content loaded yet"
        self.send(
            {
                "text": f"diplobot: cannot read the content repository ({error}); {running}. "
                "Changes pushed now are not applied until it can be read again.",
                "event": "sync.failed",
                "revision": revision,
                "reason": error,
            }
        )

    def sync_recovered(self, failed_for: str) -> None:
        self.send(
            {
                "text": f"diplobot: the content repository can be read again "
                f"(it could not for {failed_for}).",
                "event": "sync.recovered",
                "reason": f"failed for {failed_for}",
            }
        )

    def send(self, payload: dict[str, Any]) -> None:
        log = logger.bind(
            event=payload["event"], post=payload.get("post"), account=payload.get("account")
        )
        log.bind(reason=payload.get("reason")).warning("alert")
        if not self.webhook:
            return
        try:
            response = requests.post(self.webhook, json=payload, timeout=self.timeout)
            response.raise_for_status()
        except requests.RequestException as exc:
            log.bind(error=type(exc).__name__).error("alert.webhook_failed")
