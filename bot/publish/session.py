"""The backends publishing needs, wired: the ledger, a deliverer per channel, the channel of
each account, the notifier, the translator and its cache. What is done with them is in
``bot/pipeline.py`` (one code path for ``diplobot post-now`` and the service)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bot.content.types import ContentSet
from bot.notify import Notifier
from bot.publish.deliver import Deliverer, recover
from bot.publish.media import FolderMedia, MediaSource, ValidatedMedia
from bot.state import Store
from bot.state.ledger import Ledger, Row
from bot.state.translations import TranslationCache
from bot.translate.base import Translator
from bot.wiring import Wiring


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
    platforms: dict[str, str] = field(default_factory=dict)  # account → its platform's name

    @classmethod
    def build(
        cls,
        content: ContentSet,
        store: Store,
        state_dir: Path,
        wiring: Wiring,
        *,
        dry_run: bool = False,
        translator: Translator | None = None,
        media: MediaSource | None = None,
    ) -> Publishing:
        """``media``: where images are read from when published (default: the content folder,
        checked again as each file is read); the service passes its validated revision.
        ``wiring``: the translator, notifier and credentials of this process's settings."""
        accounts = content.accounts.accounts
        handles = {a: acct.handle for a, acct in accounts.items()}
        platforms = {a: acct.platform for a, acct in accounts.items()}
        ledger = store.ledger
        notifier = wiring.notifier(handles, platforms)
        translator = translator or wiring.translator()
        channels = wiring.publishers(
            accounts, dry_run=dry_run, outbox_path=state_dir / "outbox.jsonl"
        )
        media = media or FolderMedia(content.root)
        deliverers = {
            name: Deliverer(
                ledger,
                ValidatedMedia(pub, media, content.root),
                content.root,
                handles,
                alert=notifier.delivery,
                platforms=platforms,
            )
            for name, pub in channels.publishers.items()
        }
        return cls(
            ledger,
            translator,
            store.translations,
            deliverers,
            channels.channel_of,
            notifier,
            channels.warnings,
            wiring.settings.translator.parallel,
            platforms,
        )

    def recover(self, now: datetime | None = None) -> list[Row]:
        """Resolve deliveries left SENDING by a process that died (see ledger.py)."""
        return recover(self.ledger, self.deliverers, now or datetime.now(UTC))
