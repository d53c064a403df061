"""The backends publishing needs, wired: the ledger, a deliverer per channel, the channel of
each account, the notifier, the translator and its cache. What is done with them is in
``bot/pipeline.py`` (one code path for ``diplobot post-now`` and the service)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from bot.config import TranslatorSettings, XSettings
from bot.content.loader import ContentSet
from bot.notify import Notifier
from bot.publish.base import Publisher
from bot.publish.deliver import Deliverer, recover
from bot.publish.media import FolderMedia, MediaSource, ValidatedMedia
from bot.publish.outbox import OutboxPublisher
from bot.schedule.ledger import Ledger, Row
from bot.translate.base import Translator
from bot.translate.cache import TranslationCache


@dataclass
class Publishing:
    """Everything needed to publish, wired from the settings and the accounts."""

    ledger: Ledger
    translator: Translator
    cache: TranslationCache
    deliverers: dict[str, Deliverer]  # channel → deliverer
    channel_of: dict[str, str]  # account → channel
    notifier: Notifier
    warnings: list[str] = field(default_factory=list)
    translate_parallel: int = 4  # DIPLOBOT_TRANSLATOR_PARALLEL

    @classmethod
    def build(
        cls,
        content: ContentSet,
        engine: Engine,
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
        ledger = Ledger(engine)
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
            ledger,
            translator,
            TranslationCache(engine),
            deliverers,
            channel_of,
            notifier,
            warnings,
            settings.parallel,
        )

    def recover(self, now: datetime | None = None) -> list[Row]:
        """Resolve deliveries left SENDING by a process that died (see ledger.py)."""
        return recover(self.ledger, self.deliverers, now or datetime.now(UTC))
