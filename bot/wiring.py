"""Wiring: settings → backends, in one place. The CLI and the service ask here for the
translator, the notifier and the X settings of their accounts; library workarounds are
installed here, explicitly, never as a side effect of an import.

- :func:`make_translator`: the backend ``DIPLOBOT_TRANSLATOR`` names (registry in
  ``bot/translate/registry.py``). deep-translator sets no timeout and offers no session to give
  one: its default timeout is installed once, here, before its first backend is made (see
  ``bot/translate/deep.py``). DeepL's client is configured per instance in its adapter.
- :meth:`Wiring.notifier`: alerts to ``DIPLOBOT_ALERT_WEBHOOK``.
- :meth:`Wiring.x`: each account's X credentials (accounts come from the content).
- :meth:`Wiring.publishers`: each account's channel, through the platform registry
  (``bot/platforms/``); a dry run is this choice (every account to the outbox).
- :meth:`Wiring.store`: the state ``Store`` (``bot/state/``) with the settings' lease.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.notify import Notifier
from bot.settings import Settings, TranslatorSettings, XSettings
from bot.translate.base import Translator
from bot.translate.registry import USES_DEEP_TRANSLATOR, backend

if TYPE_CHECKING:
    from bot.content.model import Account
    from bot.platforms import Channels
    from bot.state import Store


def make_translator(settings: TranslatorSettings) -> Translator:
    """The translation backend of ``settings``.

    Raises:
        ConfigError: an unknown backend (the message lists the valid ones), or one that lacks
            its URL or key.
    """
    factory = backend(settings.backend)
    if settings.backend in USES_DEEP_TRANSLATOR:
        from bot.translate.deep import install_default_timeout

        install_default_timeout()
    return factory(settings)


@dataclass(frozen=True)
class Wiring:
    """One process's settings, turned into backends on demand. ``Wiring(Settings())`` is an
    installation with nothing configured (no credentials: every account to the outbox)."""

    settings: Settings = field(default_factory=Settings)

    def translator(self) -> Translator:
        return make_translator(self.settings.translator)

    def notifier(
        self, handles: dict[str, str] | None = None, platforms: dict[str, str] | None = None
    ) -> Notifier:
        """Alerts, naming accounts by ``handles`` (account → @handle) and ``platforms``
        (account → its platform's name: "@handle on Mastodon")."""
        url = self.settings.alert_webhook
        return Notifier(
            url.reveal() if url else None, handles=handles or {}, platforms=platforms or {}
        )

    def x(self, accounts: list[str]) -> XSettings:
        """X credentials of ``accounts`` (and what each account without them must set).

        Raises:
            ConfigError: see :meth:`bot.settings.Settings.x`.
        """
        return self.settings.x(accounts)

    def publishers(
        self, accounts: Mapping[str, Account], *, dry_run: bool, outbox_path: Path
    ) -> Channels:
        """Each account's channel through the platform registry: its platform's publisher
        when its credentials are set, else the outbox (with a warning); ``dry_run``: the
        outbox for every account, whatever is set."""
        from bot.platforms import publishers, read_settings

        return publishers(
            accounts,
            # A dry run uses no credentials: reading them would import every platform's
            # module and library (~30 MB resident for Mastodon's and Telegram's).
            {} if dry_run else read_settings(accounts, self.settings),
            dry_run=dry_run,
            outbox_path=outbox_path,
        )

    def store(self, url: str) -> Store:
        """The state database at ``url`` (created and migrated when needed), its ledger with
        the settings' lease (``DIPLOBOT_LEASE``), a PostgreSQL URL with the settings' password
        (``DIPLOBOT_STATE_PASSWORD``) when it has none.

        Raises:
            StateError: see :func:`bot.state.open_store`.
        """
        from bot.state import open_store

        password = self.settings.state_password
        return open_store(
            url, lease=self.settings.lease, password=password.reveal() if password else None
        )
