"""Wiring: settings → backends, in one place. The CLI and the service ask here for the
translator, the notifier and the X settings of their accounts; library workarounds are
installed here, explicitly, never as a side effect of an import.

- :func:`make_translator`: the backend ``DIPLOBOT_TRANSLATOR`` names (registry in
  ``bot/translate/registry.py``). deep-translator sets no timeout and offers no session to give
  one: its default timeout is installed once, here, before its first backend is made (see
  ``bot/translate/deep.py``). DeepL's client is configured per instance in its adapter.
- :meth:`Wiring.notifier`: alerts to ``DIPLOBOT_ALERT_WEBHOOK``.
- :meth:`Wiring.x`: each account's X credentials (accounts come from the content).
- The publishers by account (``bot/platforms/``) and the state ``Store`` (``bot/state/``) are
  built here too: see the two sections at the end of this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.notify import Notifier
from bot.settings import Settings, TranslatorSettings, XSettings
from bot.translate.base import Translator
from bot.translate.registry import USES_DEEP_TRANSLATOR, backend


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

    def notifier(self, handles: dict[str, str] | None = None) -> Notifier:
        """Alerts, naming accounts by ``handles`` (account → @handle)."""
        url = self.settings.alert_webhook
        return Notifier(url.reveal() if url else None, handles=handles or {})

    def x(self, accounts: list[str]) -> XSettings:
        """X credentials of ``accounts`` (and what each account without them must set).

        Raises:
            ConfigError: see :meth:`bot.settings.Settings.x`.
        """
        return self.settings.x(accounts)

    # -- publishers by account ------------------------------------------------------------
    # The platform registry (bot/platforms/) turns ``self.settings`` and the content's accounts
    # into one Publisher per account (the outbox for a dry run, or an account without
    # credentials). Its factory goes here, as ``publishers(...)``, called by the pipeline.

    # -- state --------------------------------------------------------------------------
    # The state ``Store`` (bot/state/) is opened here from ``self.settings.state`` (or the
    # root's default file) with ``self.settings.lease``, as ``store(...)``.
