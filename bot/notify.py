"""Alerts: every delivery that will not go out as planned is told to people.

``DIPLOBOT_ALERT_WEBHOOK`` receives a JSON POST per alert (``bot/wiring.py`` builds the
notifier from the settings). The body carries ``text`` (what Slack
and Mattermost incoming webhooks display) and the same facts as fields for other tools. A
webhook that fails is logged, never raised: alerting must not stop publishing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests
from loguru import logger

from bot.platforms import PLATFORMS
from bot.state.ledger import Row

if TYPE_CHECKING:
    from bot.publish.base import Foreign


class Notifier:
    def __init__(
        self,
        webhook: str | None = None,
        timeout: float = 10.0,
        handles: dict[str, str] | None = None,
        platforms: dict[str, str] | None = None,
    ) -> None:
        self.webhook = webhook
        self.timeout = timeout
        self.handles = handles or {}
        # account → its platform's name (accounts.yaml's ``platform:``), to say where it is
        self.platforms = platforms or {}

    def where(self, account: str, handle: str | None = None) -> str:
        """How an alert names an account: ``@handle on Mastodon`` (its platform's display
        name, when the notifier knows the account's platform)."""
        shown = f"@{handle or self.handles.get(account, account)}"
        found = PLATFORMS.get(self.platforms.get(account, ""))
        return f"{shown} on {found.display}" if found is not None else shown

    def _platform(self, account: str) -> dict[str, str]:
        """The ``platform`` field of an alert about ``account``, when known."""
        name = self.platforms.get(account)
        return {"platform": name} if name else {}

    def delivery(self, row: Row, reason: str) -> None:
        self.send(
            {
                "text": f"diplobot: {row.post_id} part {row.part} for {self.where(row.account)} "
                f"is {row.state}: {reason}",
                "event": f"delivery.{row.state.lower()}",
                "post": row.post_id,
                "account": row.account,
                **self._platform(row.account),
                "part": row.part,
                "state": str(row.state),
                "reason": reason,
            }
        )

    def held(self, post_id: str, account: str, reason: str) -> None:
        self.send(
            {
                "text": f"diplobot: {post_id} for {self.where(account)} is held: {reason}",
                "event": "delivery.held",
                "post": post_id,
                "account": account,
                **self._platform(account),
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

    def foreign_publisher(self, foreign: Foreign) -> None:
        """A post on one of our accounts that is one of our deliveries, sent by someone else."""
        ours = (
            f"ours is {foreign.our_url or foreign.ours}"
            if foreign.ours
            else f"ours is {foreign.state} here (not sent yet)"
        )
        self.send(
            {
                "text": "diplobot: another publisher sends our content to "
                f"{self.where(foreign.account, foreign.handle)}: "
                f"{foreign.their_url or foreign.theirs} is {foreign.post} part {foreign.part}, "
                f"but this service did not send it ({ours}). Two deployments are publishing "
                "to this account: stop the other one, then check the account for posts "
                "published twice and delete the extra ones.",
                "event": "account.foreign_publisher",
                "post": foreign.post,
                "account": foreign.account,
                **self._platform(foreign.account),
                "part": foreign.part,
                "state": foreign.state,
                "ours": foreign.ours,
                "our_url": foreign.our_url,
                "theirs": foreign.theirs,
                "their_url": foreign.their_url,
                "reason": "another publisher sent this delivery",
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
