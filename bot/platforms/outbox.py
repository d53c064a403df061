"""The dry-run publisher: appends what would be sent to a JSON-lines outbox file (every
account's channel in a dry run, and an account's without credentials)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.errors import ConfigError, PublishError
from bot.publish.base import Outgoing, Published, Receipt
from bot.publish.match import same_text


class OutboxPublisher:
    """Writes one JSON object per post to ``path`` (flushed and fsynced before returning)."""

    name = "outbox"

    def __init__(self, path: Path, handles: dict[str, str] | None = None) -> None:
        self.path = path
        self.handles = handles or {}  # account → handle, for whoami
        self._lock = threading.Lock()

    def publish(self, item: Outgoing) -> Receipt:
        record = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "account": item.account,
            "handle": item.handle,
            "text": item.text,
            "lang": item.lang or None,  # as a platform that tags posts would tag it
            "key": item.key or None,  # the delivery's identity (idempotency, record key)
            "reply_to": item.reply_to_id,
            "media": [
                # With the bytes of the validated revision, their digest says what would go.
                {"file": str(m.path), "alt": m.alt}
                | ({"sha256": hashlib.sha256(m.data).hexdigest()} if m.data is not None else {})
                for m in item.media
            ],
        }
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                count = self._count()
                record["id"] = f"dry-run-{count + 1}"
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as exc:
            raise PublishError(f"cannot write the outbox {self.path}: {exc.strerror}") from exc
        return item.receipt(str(record["id"]), None)

    def repost(self, item: Outgoing) -> Receipt:
        """Write the repost of ``item.repost_of`` (``"repost_of"``: the original's id, and
        ``"text": ""``); one the outbox holds already is not written again, as a platform
        keeps one repost of a post per account."""
        original = item.repost_of
        if original is None:
            raise PublishError("a repost without its original: a defect to report")
        record: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "account": item.account,
            "handle": item.handle,
            "text": "",
            "repost_of": original.remote_id,
            "key": item.key or None,
        }
        try:
            with self._lock:
                found = self._repost_record(item.account, original.remote_id)
                if found is not None:
                    return Receipt(str(found["id"]), None)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                record["id"] = f"dry-run-{self._count() + 1}"
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as exc:
            raise PublishError(f"cannot write the outbox {self.path}: {exc.strerror}") from exc
        return Receipt(str(record["id"]), None)

    def find_repost(self, item: Outgoing, since: datetime) -> Receipt | None:
        original = item.repost_of
        found = self._repost_record(item.account, original.remote_id) if original else None
        return Receipt(str(found["id"]), None) if found is not None else None

    def unrepost(self, account: str, remote_id: str, original_id: str) -> None:
        self.delete(account, remote_id)

    def _repost_record(self, account: str, original_id: str) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in reversed(self.records())
                if r["account"] == account and r.get("repost_of") == original_id
            ),
            None,
        )

    def find(self, item: Outgoing, since: datetime) -> Receipt | None:
        for record in reversed(self.records()):
            if (
                not record.get("repost_of")
                and record["account"] == item.account
                and record.get("reply_to") == item.reply_to_id
                and len(record.get("media") or []) == len(item.media)
                and same_text(str(record["text"]), item.text)
                and (datetime.fromisoformat(str(record["at"])) >= since.replace(microsecond=0))
            ):
                return item.receipt(str(record["id"]), None)
        return None

    def recent(self, account: str, since: datetime) -> list[Published]:
        """What the outbox holds for ``account`` since ``since``, newest first: only what
        this outbox wrote, so the watch never finds another publisher in a dry run."""
        found = []
        for record in reversed(self.records()):
            at = datetime.fromisoformat(str(record["at"]))
            if record["account"] == account and at >= since.replace(microsecond=0):
                found.append(
                    Published(
                        str(record["id"]),
                        str(record["text"]),
                        record.get("reply_to"),
                        len(record.get("media") or []),
                        at,
                        None,
                    )
                )
        return found

    def whoami(self, account: str) -> str:
        """The handle of ``account`` as accounts.yaml gives it: the outbox writes as anyone.

        Raises:
            ConfigError: the outbox was not told of ``account``.
        """
        try:
            return self.handles[account]
        except KeyError:
            raise ConfigError(f"account '{account}' is not one the outbox writes for") from None

    def delete(self, account: str, remote_id: str) -> None:
        record = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "account": account,
            "deleted": remote_id,
        }
        try:
            with self._lock, open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise PublishError(f"cannot write the outbox {self.path}: {exc.strerror}") from exc

    def records(self) -> list[dict[str, Any]]:
        """The posts the outbox holds, oldest first; deleted ones left out."""
        if not self.path.exists():
            return []
        try:
            with open(self.path, encoding="utf-8") as handle:
                lines = [json.loads(line) for line in handle if line.strip()]
        except OSError as exc:
            raise PublishError(f"cannot read the outbox {self.path}: {exc.strerror}") from exc
        deleted = {(r.get("account"), r["deleted"]) for r in lines if "deleted" in r}
        return [r for r in lines if "text" in r and (r["account"], r["id"]) not in deleted]

    def _count(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, encoding="utf-8") as handle:
            return sum(1 for line in handle if '"text"' in line)
