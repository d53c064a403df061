"""Reading platforms' JSON answers, which may be cut off, not JSON, or shaped otherwise."""

from __future__ import annotations

import json
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
