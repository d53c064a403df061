"""Reading platforms' JSON answers, which may be cut off, not JSON, or shaped otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def loads(raw: bytes) -> Any:
    """The JSON in ``raw``; None when it is not JSON, cut off, or not UTF-8."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


def dig(body: Any, *path: str) -> Any:
    """``body[path[0]][path[1]]…`` when each step is an object that has it; else None."""
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def iso_time(value: Any) -> datetime | None:
    """An ISO 8601 time from an answer (``2026-11-24T08:00:00.000Z``), as aware UTC when it
    names no zone; None when absent or odd: a post's time says when, never which post, so an
    odd one is no reason to refuse a page."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
