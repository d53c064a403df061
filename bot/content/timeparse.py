"""Local times as editors write them, resolved to UTC instants without guessing.

A local time that does not exist (clocks jump forward) or exists twice (clocks go back) in its
zone is an error for a one-off ``publish_at``: the editor must say which instant they mean.
Recurring slots cannot be errors every year, so :func:`resolve_recurring` applies a documented
rule instead: a missing time moves forward by the gap, an ambiguous one takes the first instant.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DT = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?\Z",
    re.ASCII,  # digits 0-9 only: int() would quietly read Arabic-Indic or full-width ones
)


MIN_YEAR = 1970
MAX_YEAR = 2999
"""Dates diplobot schedules. Outside, arithmetic meets datetime's own limits (year 1 in a zone
east of UTC, year 9999 west of it, raise OverflowError) and no real post is meant."""


class TimeProblem(ValueError):
    """A local time could not be turned into one instant; the message says why and what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@cache
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``.

    Raises:
        TimeProblem: the name is not a known zone.
    """
    shown = name if len(name) <= 60 else name[:57] + "..."
    if not name or name != name.strip():
        raise TimeProblem(f"'{shown}' is not a time zone", "use an IANA name like Europe/Paris")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: e.g. a name too long
        raise TimeProblem(
            f"unknown time zone '{shown}'", "use an IANA name like Europe/Paris or Asia/Dubai"
        ) from None


def parse_local(value: str, tz: ZoneInfo) -> datetime:
    """Parse ``YYYY-MM-DD HH:MM[:SS][offset]`` into an aware UTC datetime.

    Without an offset the time is read in ``tz`` and must exist exactly once there.

    Raises:
        TimeProblem: malformed, impossible date, a year outside ``MIN_YEAR..MAX_YEAR``, or a
            local time skipped/repeated by DST.
    """
    match = _DT.match(value.strip())
    if not match:
        raise TimeProblem(
            f"'{value}' is not a date and time",
            "write it as YYYY-MM-DD HH:MM, e.g. 2026-11-24 09:00",
        )
    try:
        naive = datetime.fromisoformat(
            f"{match['date']}T{int(match['h']):02d}:{match['m']}:{match['s'] or '00'}"
        )
    except ValueError as exc:
        raise TimeProblem(f"'{value}' is not a valid date and time: {exc}") from None
    if not MIN_YEAR <= naive.year <= MAX_YEAR:
        raise TimeProblem(
            f"'{value.strip()}' is out of range: diplobot schedules dates from {MIN_YEAR} "
            f"to {MAX_YEAR}",
            "check the year",
        )
    offset = match["tz"]
    if offset:
        if offset == "Z":
            return naive.replace(tzinfo=UTC)
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours >= 24 or minutes >= 60:
            raise TimeProblem(
                f"offset {offset} in '{value}' is not valid",
                "write it as +HH:MM with hours below 24 and minutes below 60, e.g. +01:00",
            )
        delta = timedelta(hours=hours, minutes=minutes)
        return naive.replace(tzinfo=timezone(sign * delta)).astimezone(UTC)
    return resolve_strict(naive, tz, shown=value.strip())


def resolve_strict(naive: datetime, tz: ZoneInfo, *, shown: str) -> datetime:
    """Turn a naive local time into UTC, refusing times that DST skips or repeats."""
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    off_first, off_second = first.utcoffset(), second.utcoffset()
    if off_first == off_second:
        return first.astimezone(UTC)
    assert off_first is not None and off_second is not None
    if off_first > off_second:
        # fold=0 uses the offset before the transition, which is larger when clocks go back.
        back = int((off_first - off_second).total_seconds()) // 60
        amount = (
            f"{back // 60} hour" + ("s" if back != 60 else "")
            if back % 60 == 0
            else (f"{back} minutes")
        )
        raise TimeProblem(
            f"{shown} occurs twice in {tz.key} (clocks go back {amount}, so "
            f"{naive:%H:%M} happens twice)",
            f"add the offset to choose: {_with_offset(naive, off_first)} for the first, "
            f"{_with_offset(naive, off_second)} for the second",
        )
    # Clocks jump forward: this wall time never happens.
    gap = off_second - off_first
    start = _transition_wall_time(naive, tz)
    jump_to = (datetime.combine(naive.date(), start) + gap).strftime("%H:%M")
    later = naive.replace(tzinfo=timezone(off_first)).astimezone(tz)
    earlier = naive.replace(tzinfo=timezone(off_second)).astimezone(tz)
    raise TimeProblem(
        f"{shown} does not exist in {tz.key} (clocks jump from {start:%H:%M} to {jump_to})",
        f"pick a time before {start:%H:%M} or from {jump_to} on, or add an offset: "
        f"{_with_offset(naive, off_first)} means {later:%H:%M} after the jump, "
        f"{_with_offset(naive, off_second)} means {earlier:%H:%M} before it",
    )


def resolve_recurring(day_naive: datetime, tz: ZoneInfo) -> datetime:
    """UTC instant of a recurring local time (a slot).

    A wall time that DST skips moves forward by the gap (02:30 becomes 03:30 on the day
    clocks jump from 02:00 to 03:00); one that happens twice takes its first occurrence.
    Both are what ``fold=0`` means in PEP 495.
    """
    return day_naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def local_time_exists(naive: datetime, tz: ZoneInfo) -> bool:
    """False when DST skips this wall time."""
    a = naive.replace(tzinfo=tz, fold=0).utcoffset()
    b = naive.replace(tzinfo=tz, fold=1).utcoffset()
    assert a is not None and b is not None
    return a >= b


def _with_offset(naive: datetime, offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{naive:%Y-%m-%d %H:%M}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _transition_wall_time(naive: datetime, tz: ZoneInfo) -> time:
    """Wall-clock time at which the forward jump containing ``naive`` starts."""
    minute = timedelta(minutes=1)
    start = naive.replace(second=0)
    for _ in range(24 * 60):  # gaps are at most a day (Samoa 2011)
        if local_time_exists(start - minute, tz):
            break
        start -= minute
    return start.time()
