"""``diplobot mark-posted``: a person records a delivery as published, with its link.

For the deliveries only a person can settle: a manual channel's task (Weibo), once posted by
hand; an UNKNOWN delivery of a channel that cannot be searched (Telegram), found on the
channel; any UNKNOWN delivery a person checked, or one that ended FAILED because its timeline
could never be read, or a manual task that EXPIRED but was posted after all. Never twice: a
POSTED delivery is not recorded again, and the ledger's transition only moves a row still in
the state it was read in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from loguru import logger

from bot.errors import ConfigError
from bot.publish.deliver import may_be_live
from bot.state.ledger import Ledger, Row, State

HOSTS = {
    "telegram": ("t.me", "telegram.me"),
    "weibo": ("weibo.com", "weibo.cn"),
}
"""The hosts a link of each platform is on (a platform not listed: any host)."""


@dataclass(frozen=True)
class Marked:
    ok: bool
    message: str
    row: Row | None = None


def markable(row: Row) -> bool:
    """A row a person may record as POSTED: its outcome is not known (UNKNOWN, or FAILED
    because it could never be confirmed), or it is a manual task that expired."""
    if row.state is State.UNKNOWN or may_be_live(row):
        return True
    return row.state is State.EXPIRED and "task expired" in (row.last_error or "")


def remote_id_of(url: str, platform: str) -> str:
    """The post's id in its link: the last part of its path (Telegram: the message id, which
    ``retract`` deletes).

    Raises:
        ConfigError: not an http(s) link on the platform's host, or no id in it.
    """
    split = urlsplit(url.strip())
    host = (split.hostname or "").lower()
    if split.scheme not in ("http", "https") or not host:
        raise ConfigError(f"--url {url!r}: give the post's link, https://…")
    hosts = HOSTS.get(platform)
    if hosts and not any(host == h or host.endswith(f".{h}") for h in hosts):
        raise ConfigError(f"--url {url!r}: a {platform} post's link is on {' or '.join(hosts)}")
    parts = [p for p in split.path.split("/") if p]
    last = parts[-1] if parts else ""
    if platform == "telegram" and not re.fullmatch(r"[0-9]{1,12}", last):
        raise ConfigError(
            f"--url {url!r}: a Telegram message's link ends with its number "
            "(https://t.me/channel/123)"
        )
    if not last:
        raise ConfigError(f"--url {url!r}: the link names no post")
    return last


def mark_posted(
    ledger: Ledger,
    rows: Sequence[Row],
    *,
    platform: str,
    url: str,
    part: int | None = None,
) -> Marked:
    """Record the row of ``rows`` (one post's rows for one account) that ``part`` names (the
    only open one when None) as POSTED at ``url``.

    Raises:
        ConfigError: the link is not one of the platform's.
    """
    remote_id = remote_id_of(url, platform)
    chosen = [r for r in rows if part is None or r.part == part]
    if not chosen:
        return Marked(
            False,
            f"no part {part} recorded for this account"
            if part
            else "nothing recorded for this account: is the post due yet?",
        )
    posted = [r for r in chosen if r.state is State.POSTED]
    candidates = [r for r in chosen if markable(r)]
    if len(candidates) > 1:
        parts = ", ".join(str(r.part) for r in candidates)
        return Marked(False, f"parts {parts} are open: say which with --part")
    if not candidates:
        if posted:
            row = posted[0]
            same = row.url == url.strip() or row.remote_id == remote_id
            shown = row.url or row.remote_id
            if same:
                return Marked(True, f"part {row.part} is already POSTED as {shown}", row)
            return Marked(False, f"part {row.part} is already POSTED as {shown}: nothing changed")
        states = ", ".join(f"part {r.part} {r.state}" for r in chosen)
        return Marked(
            False,
            f"{states}: nothing to record (only a delivery UNKNOWN, a manual task, or one that "
            "could not be confirmed is recorded by hand)",
        )
    row = candidates[0]
    if not ledger.transition(
        row.id, State.POSTED, expect=[row.state], remote_id=remote_id, url=url.strip()
    ):
        now = ledger.get(row.id)
        return Marked(False, f"part {row.part} changed meanwhile (now {now.state}): try again")
    logger.bind(post=row.post_id, account=row.account, part=row.part, was=row.state).info(
        "publish.marked_posted"
    )
    message = f"part {row.part} was {row.state}: POSTED as {url.strip()}"
    return Marked(True, message, ledger.get(row.id))
