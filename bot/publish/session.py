"""Publishing one post to its accounts through the ledger: the code path shared by
``diplobot post-now`` and the scheduler (one function, one ledger)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loguru import logger

from bot.config import TranslatorSettings, XSettings
from bot.content.gitinfo import revision
from bot.content.loader import ContentSet, PostEntry
from bot.errors import PublishError
from bot.notify import Notifier
from bot.publish.base import Publisher
from bot.publish.deliver import REARMABLE, Deliverer, recover
from bot.publish.media import FolderMedia, MediaSource, ValidatedMedia
from bot.publish.outbox import OutboxPublisher
from bot.publish.prepare import prepare
from bot.state import Store
from bot.state.ledger import FINAL, Ledger, Row, State
from bot.state.translations import TranslationCache
from bot.translate.base import Translator
from bot.translate.localize import Variant, localize


def _ended(row: Row) -> bool:
    """In a final state that recording the post again does not reopen (a cancellation
    because the post had gone does: see ``Ledger.ensure``)."""
    reopened = (
        row.state is State.RETRACTED
        and row.remote_id is None
        and (row.last_error or "").startswith("cancelled:")
    )
    return row.state in FINAL and not reopened


@dataclass
class AccountResult:
    account: str
    rows: list[Row] = field(default_factory=list)
    message: str = ""
    rearmed: list[str] = field(default_factory=list)  # what post-now did with ended rows

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.state is State.POSTED for r in self.rows)


@dataclass
class Publishing:
    """Everything needed to publish: content, ledger, translator, a deliverer per channel."""

    content: ContentSet
    ledger: Ledger
    translator: Translator
    cache: TranslationCache
    deliverers: dict[str, Deliverer]  # channel → deliverer
    channel_of: dict[str, str]  # account → channel
    notifier: Notifier
    warnings: list[str] = field(default_factory=list)
    revision: tuple[str | None, str | None] = (None, None)  # git commit and author of content
    translate_parallel: int = 4  # DIPLOBOT_TRANSLATOR_PARALLEL
    # Rows never to be sent by this publishing (row id → why): their part or post was removed
    # while they were SENDING or UNKNOWN. The service settles them (reconciles, cancels).
    removed: dict[int, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        content: ContentSet,
        store: Store,
        state_dir: Path,
        *,
        dry_run: bool = False,
        translator: Translator | None = None,
        media: MediaSource | None = None,
    ) -> Publishing:
        """``media``: where images are read from when published (default: the content folder,
        checked again as each file is read); the service passes its validated revision."""
        from bot.translate.registry import make_translator

        handles = {a: acct.handle for a, acct in content.accounts.accounts.items()}
        ledger = store.ledger
        notifier = Notifier.from_env(handles)
        settings = TranslatorSettings.from_env()
        translator = translator or make_translator(settings)
        publishers: dict[str, Publisher] = {"outbox": OutboxPublisher(state_dir / "outbox.jsonl")}
        channel_of: dict[str, str] = {}
        warnings: list[str] = []
        x = XSettings.from_env(list(handles))
        if not dry_run:
            from bot.publish.x import XPublisher

            x_publisher = XPublisher.from_settings(x, handles)
            if x_publisher is not None:
                publishers["x"] = x_publisher
        for account in handles:
            if not dry_run and account in x.tokens:
                channel_of[account] = "x"
            else:
                channel_of[account] = "outbox"
                if not dry_run:
                    warnings.append(
                        f"no X credentials for account '{account}': DRY RUN to the outbox "
                        f"{state_dir / 'outbox.jsonl'} (set {x.missing.get(account, '')})"
                    )
        media = media or FolderMedia(content.root)
        deliverers = {
            name: Deliverer(
                ledger,
                ValidatedMedia(pub, media, content.root),
                content.root,
                handles,
                alert=notifier.delivery,
            )
            for name, pub in publishers.items()
        }
        return cls(
            content,
            ledger,
            translator,
            store.translations,
            deliverers,
            channel_of,
            notifier,
            warnings,
            revision(content.root),
            settings.parallel,
        )

    def recover(self, now: datetime | None = None) -> list[Row]:
        """Resolve deliveries left SENDING by a process that died (see ledger.py)."""
        return recover(self.ledger, self.deliverers, now or datetime.now(UTC))

    def record(
        self,
        entry: PostEntry,
        accounts: list[str],
        due: datetime,
        variants: list[Variant] | None = None,
        *,
        alert_held: bool = True,
        hold_until: datetime | None = None,
        rearm: dict[str, list[str]] | None = None,
    ) -> dict[str, str]:
        """Put ``entry``'s deliveries to ``accounts`` in the ledger (text stored before any
        attempt); parts no longer in the post are cancelled. Returns, per account that will
        not get it now, why.

        ``hold_until``: an account whose translation failed gets HELD rows (awaiting
        translation, next try at ``hold_until``) instead of nothing; its reason starts with
        "awaiting translation". Without it (``post-now``), such an account is only refused.

        ``rearm`` (``post-now``): deliveries that ended FAILED, EXPIRED or SKIPPED on an account
        that will get the post are made ready again (see :meth:`Deliverer.rearm`) before the
        current text is stored; what was done is listed there per account."""
        if variants is None:
            variants = localize(
                self.content, self.translator, self.cache, post_ids=[entry.id]
            ).variants
        rev = self.revision
        why: dict[str, str] = {}
        for account in accounts:
            channel = self.channel_of[account]
            existing = [
                r for r in self.ledger.rows(entry.id, channel=channel) if r.account == account
            ]
            if existing and all(r.state is State.POSTED for r in existing):
                first = min(existing, key=lambda r: r.part)
                why[account] = (
                    f"already published on {first.updated_at:%Y-%m-%d %H:%M} UTC"
                    f" ({first.url or first.remote_id}); nothing sent"
                )
                continue
            prepared = prepare(
                self.content,
                entry,
                variants,
                [account],
                channel=channel,
                due=due,
                translator=self.translator,
                cache=self.cache,
                revision=rev,
            )
            refused = prepared.refused.get(account)
            # A thread already under way resumes from its recorded rows, even if refused now.
            resuming = refused is not None and any(r.state is State.POSTED for r in existing)
            if refused is not None and not resuming:
                if hold_until is not None and account in prepared.waiting:
                    if existing and all(_ended(r) for r in existing):
                        why[account] = "ended: its deliveries are in a final state"
                        continue  # expired while waiting for its translation: nothing to hold
                    held, reason = prepared.waiting[account]
                    self.ledger.hold(held, reason, hold_until)
                    self._drop_parts(existing, len(held))
                    why[account] = reason
                    continue
                why[account] = f"not published: {refused}"
                if alert_held:
                    self.notifier.held(entry.id, account, refused)
                continue
            ended = [r for r in existing if r.state in REARMABLE]
            if rearm is not None and ended:
                try:
                    rearm[account] = self.deliverers[channel].rearm(ended, due)
                except PublishError as exc:
                    why[account] = (
                        "nothing sent: it may be on X from an earlier attempt, and the "
                        f"timeline could not be read to check ({exc}); try again later"
                    )
                    continue
            if not resuming:
                self.ledger.ensure(prepared.rows)  # re-armed rows get the current text too
                self._drop_parts(existing, sum(1 for r in prepared.rows if r.account == account))
        return why

    def _drop_parts(self, existing: list[Row], keep: int) -> None:
        """Cancel the recorded parts after the first ``keep``: the post has fewer parts now.
        One already SENDING or UNKNOWN may be on the platform: never sent again, it is left
        for the service to settle (see ``removed``)."""
        for row in existing:
            if row.part <= keep:
                self.removed.pop(row.id, None)  # in the post again
                continue
            reason = f"part {row.part} was removed from the post"
            if row.state in (State.SENDING, State.UNKNOWN):
                self.removed[row.id] = reason
            elif row.state in (State.PENDING, State.HELD) and self.ledger.transition(
                row.id, State.RETRACTED, expect=[row.state], error=f"cancelled: {reason}"
            ):
                logger.bind(post=row.post_id, account=row.account, part=row.part).info(
                    "delivery.cancelled"
                )

    def deliver(
        self,
        post_id: str,
        account: str,
        rows: Sequence[Row] | None = None,
        *,
        max_late: timedelta | None = None,
        look_now: bool = False,
    ) -> list[Row]:
        """Deliver the recorded parts of one post to one account, as a reply chain. ``rows``:
        the parts as just read when they run from the first on without a gap (else, or when
        not given, they are read here). ``max_late``, ``look_now``: see
        :meth:`Deliverer.deliver_chain`."""
        rows = self._chain(post_id, account, rows)
        channel = self.channel_of[account]
        # What was removed from the content is never sent, even if a row of it is still open.
        rows = [r for r in rows if r.id not in self.removed]
        if not rows:
            return []
        done = self.deliverers[channel].deliver_chain(rows, max_late=max_late, look_now=look_now)
        shown = {r.id for r in done}
        # Parts after one that did not go out are still PENDING: report them too.
        result = done + [self.ledger.get(r.id) for r in rows if r.id not in shown]
        logger.bind(post=post_id, account=account, states=[str(r.state) for r in result]).info(
            "post.delivered"
        )
        return result

    def hold(self, post_id: str, account: str, rows: Sequence[Row], max_late: timedelta) -> None:
        """A paused account's chain: nothing is sent, but the lateness window still applies."""
        rows = self._chain(post_id, account, rows)
        self.deliverers[self.channel_of[account]].deliver_chain(rows, max_late=max_late, send=False)

    def _chain(self, post_id: str, account: str, rows: Sequence[Row] | None) -> Sequence[Row]:
        if rows is None or sorted(r.part for r in rows) != list(range(1, len(rows) + 1)):
            channel = self.channel_of[account]
            rows = [r for r in self.ledger.rows(post_id, channel=channel) if r.account == account]
        return rows

    def publish_post(self, entry: PostEntry, accounts: list[str]) -> list[AccountResult]:
        """``post-now``: record ``entry`` for ``accounts`` as due now, and deliver it. What is
        already POSTED on an account is not sent again; the result says so. What ended
        FAILED, EXPIRED or SKIPPED is tried again; a thread resumes from its last posted part.
        No lateness window, and UNKNOWN rows are looked up now: a person asked for it."""
        now = datetime.now(UTC)
        self.recover(now)
        rearmed: dict[str, list[str]] = {}
        why = self.record(entry, accounts, now, rearm=rearmed)
        results = []
        for account in accounts:
            result = AccountResult(account, rearmed=rearmed.get(account, []))
            results.append(result)
            if account in why:
                result.message = why[account]
                continue
            # A person asked for it: the service's next apply must neither move it back to
            # the post's planned time nor cancel it because the post is a draft.
            channel = self.channel_of[account]
            self.ledger.arm_by_hand(
                r.id
                for r in self.ledger.rows(entry.id, channel=channel)
                if r.account == account and r.state in (State.PENDING, State.UNKNOWN)
            )
            result.rows = self.deliver(entry.id, account, look_now=True)
            for row in result.rows:
                # X made it wait (429, back-off): it is due when X allows it, so the running
                # service sends it then, with its lateness window counted from that moment.
                if row.state is State.PENDING and row.retry_at and row.retry_at > row.due_at:
                    self.ledger.reschedule(row.id, row.retry_at)
        return results
