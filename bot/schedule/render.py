"""The plan as text for people, as JSON for tools (the JSON shape is documented in
docs/plan.md and versioned by its ``format`` field), and as Markdown for a pull request's
comment."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from bot.content.model import Account
from bot.content.types import ContentSet
from bot.platforms import platform_of
from bot.schedule.diff import ScheduleDiff
from bot.schedule.plan import Plan

JSON_FORMAT = "diplobot.plan/1"


def _iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown_accounts(content: ContentSet, mission: str | None) -> dict[str, Account]:
    """The accounts a plan shows: ``mission``'s, or every account."""
    if mission is None:
        return dict(content.accounts.accounts)
    return content.accounts_of(mission)


def plan_to_json(plan: Plan, content: ContentSet, mission: str | None = None) -> dict[str, Any]:
    """The plan as JSON (``mission``: the plan is that mission's, see ``for_mission``). With
    missions, each delivery says its account's mission; a repost says what it reposts."""
    deliveries = []
    for d in plan.deliveries:
        tz = content.account_zone(d.account)
        extra: dict[str, Any] = {}
        if content.has_missions:
            extra["mission"] = content.mission_of(d.account)
        if d.repost_of is not None:
            extra["repost_of"] = d.repost_of
        deliveries.append(
            {
                "post": d.post,
                "account": d.account,
                "handle": content.accounts.accounts[d.account].handle,
                "platform": content.accounts.accounts[d.account].platform,
                "lang": d.lang,
                "part": d.part,
                "parts": d.parts,
                "due_utc": _iso_utc(d.due),
                "due_local": d.due.astimezone(tz).isoformat(timespec="minutes"),
                "timezone": tz.key,
                "source": d.source,
                "status": d.status,
                "note": d.note,
                "slot": d.slot,
                "has_url": d.has_url,
                **extra,
            }
        )
    per_day = [
        {"account": account, "date": day.isoformat(), "cost": cost}
        for (account, day), cost in plan.cost.items()
    ]
    head = {"mission": mission} if mission is not None else {}
    return {
        "format": JSON_FORMAT,
        **head,
        "from": _iso_utc(plan.start),
        "until": _iso_utc(plan.end),
        "deliveries": deliveries,
        "warnings": [
            {"kind": w.kind, "post": w.post, "account": w.account, "message": w.message}
            for w in plan.warnings
        ],
        "drafts": sorted(plan.drafts),
        "cost": {
            "currency": plan.currency,
            "total": round(sum(plan.cost.values()), 4),
            "per_day": per_day,
        },
    }


def plan_to_text(plan: Plan, content: ContentSet, mission: str | None = None) -> str:
    of = f" of mission {mission}" if mission is not None else ""
    lines: list[str] = [
        f"Plan{of} from {plan.start:%Y-%m-%d %H:%M} to {plan.end:%Y-%m-%d %H:%M} UTC: "
        f"{len(plan.deliveries)} deliveries"
    ]
    by_account: dict[str, list[str]] = defaultdict(list)
    for d in plan.deliveries:
        tz = content.account_zone(d.account)
        local = d.due.astimezone(tz)
        part = f" {d.part}/{d.parts}" if d.parts > 1 else ""
        flag = "" if d.status == "scheduled" else f"  [{d.status.upper()}: {d.note}]"
        slot = f" slot {d.slot}" if d.slot else ""
        source: str = d.source
        if d.repost_of is not None:
            source = "↻ repost of " + d.repost_of.rsplit("@", 1)[-1]
        by_account[d.account].append(
            f"  {local:%a %Y-%m-%d %H:%M} ({d.due:%H:%M} UTC)  {d.post}{part}  {source}{slot}{flag}"
        )
    shown_mission = None
    for account_id, account in _shown_accounts(content, mission).items():
        tz = content.account_zone(account_id)
        rows = by_account.get(account_id, [])
        home = content.mission_of(account_id)
        if content.has_missions and home != shown_mission:
            shown_mission = home
            lines += ["", f"== mission {home} ({content.missions[home].layout.accounts})"]
        lines.append("")
        display = platform_of(account).display
        lines.append(f"@{account.handle} ({display}, {account.lang}, {tz.key}): {len(rows)}")
        lines.extend(rows or ["  nothing planned"])
    if plan.drafts:
        lines.append("")
        lines.append(
            "Drafts (only 'diplobot post-now ID' publishes them): " + ", ".join(sorted(plan.drafts))
        )
    if plan.warnings:
        lines.append("")
        lines.append(f"Warnings ({len(plan.warnings)}):")
        lines.extend(f"  {w.kind}: {w.message}" for w in plan.warnings)
    if plan.cost:
        lines.append("")
        lines.append(f"Estimated API cost ({plan.currency}; free platforms cost 0):")
        totals: dict[str, float] = defaultdict(float)
        for (account_id, _day), cost in plan.cost.items():
            totals[account_id] += cost
        days = max(1, round((plan.end - plan.start).total_seconds() / 86400))
        for account_id, total in totals.items():
            where = platform_of(content.accounts.accounts[account_id])
            if where.prices is None:
                lines.append(f"  {account_id}: 0 ({where.display} is free)")
                continue
            lines.append(
                f"  {account_id}: {total:.2f} over {days} day(s), "
                f"{total / days:.2f} a day on average"
            )
        lines.append(f"  total: {sum(totals.values()):.2f}")
    return "\n".join(lines)


def _md(text: str) -> str:
    """``text`` safe inside a Markdown table cell or list item (ids and handles are checked
    by the loader; this keeps a stray character from breaking the layout)."""
    return re.sub(r"([\\`*_\[\]|<>#])", r"\\\1", text)


def _local(content: ContentSet, account: str, moment: datetime) -> str:
    local = moment.astimezone(content.account_zone(account))
    return f"{local:%a %Y-%m-%d %H:%M} ({moment.astimezone(UTC):%H:%M} UTC)"


def plan_to_markdown(
    plan: Plan,
    content: ContentSet,
    diff: ScheduleDiff | None = None,
    ref: str | None = None,
    mission: str | None = None,
) -> str:
    """The plan as Markdown, for a pull request's comment. With ``diff``: per account, what
    the change adds, moves or cancels, with the posts planned and their cost before and after;
    without: every account's deliveries."""
    days = max(1, round((plan.end - plan.start).total_seconds() / 86400))
    accounts = _shown_accounts(content, mission)
    head = f"{days} days from {plan.start:%Y-%m-%d %H:%M} UTC"
    lines: list[str] = []
    if diff is None:
        lines += [f"### diplobot plan: {head}", ""]
        for account_id, account in accounts.items():
            rows = [d for d in plan.deliveries if d.account == account_id and d.part == 1]
            where = platform_of(account).display
            lines.append(f"**@{_md(account.handle)}** ({where}, {account.lang}): {len(rows)}")
            for d in rows:
                flag = "" if d.status == "scheduled" else f" — {d.status}: {_md(d.note)}"
                lines.append(f"- {_local(content, account_id, d.due)} `{d.post}`{flag}")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"
    lines += [f"### diplobot plan: what this change does ({head}, compared with `{ref}`)", ""]
    if not diff.changes:
        lines.append("No delivery is added, moved or cancelled.")
    else:
        lines += [
            f"| account | added | moved | cancelled | posts planned | cost ({diff.currency}) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for account_id, account in accounts.items():
            mine = diff.of(account_id)
            if not mine:
                continue
            kinds = Counter(c.kind for c in mine)
            before = diff.posts_before.get(account_id, 0)
            after = diff.posts_after.get(account_id, 0)
            cost_b = diff.cost_before.get(account_id, 0.0)
            cost_a = diff.cost_after.get(account_id, 0.0)
            lines.append(
                f"| @{_md(account.handle)} ({platform_of(account).display}, {account.lang}) "
                f"| {kinds['added']} | {kinds['moved']} | {kinds['cancelled']} "
                f"| {before} → {after} | {cost_b:.2f} → {cost_a:.2f} ({cost_a - cost_b:+.2f}) |"
            )
        lines += ["", "<details><summary>Each change, in each account's time</summary>"]
        for account_id, account in accounts.items():
            mine = diff.of(account_id)
            if not mine:
                continue
            tz = content.account_zone(account_id).key
            lines += ["", f"**@{_md(account.handle)}** ({tz})"]
            for c in mine:
                if c.kind == "added" and c.after is not None:
                    lines.append(f"- added `{c.post}`: {_local(content, account_id, c.after)}")
                elif c.kind == "cancelled" and c.before is not None:
                    lines.append(
                        f"- cancelled `{c.post}`: was {_local(content, account_id, c.before)}"
                    )
                elif c.before is not None and c.after is not None:
                    lines.append(
                        f"- moved `{c.post}`: {_local(content, account_id, c.before)} → "
                        f"{_local(content, account_id, c.after)}"
                    )
        lines += ["", "</details>"]
    total_b, total_a = sum(diff.cost_before.values()), sum(diff.cost_after.values())
    lines += [
        "",
        f"Estimated cost over the {days} days: {total_b:.2f} → {total_a:.2f} {diff.currency} "
        f"({total_a - total_b:+.2f}).",
    ]
    return "\n".join(lines) + "\n"
