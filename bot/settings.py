"""Settings: every environment variable is read here, once, into frozen settings.

:meth:`Settings.from_env` takes a mapping (tests pass a dict); only the CLI's entry point hands
it the process environment (:func:`from_process`). Secrets are read here and never appear in a
repr or a log. Every secret variable ``X`` may instead be given as ``X_FILE``: the path of a file
holding it (Docker and Kubernetes secrets), with surrounding whitespace stripped.
:data:`VARIABLES` lists every variable; docs/configuration.md is checked against it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from bot.envname import env_name
from bot.errors import ConfigError


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


def read_secret(name: str, env: Mapping[str, str]) -> Secret | None:
    """The secret in ``$name``, or in the file named by ``$name_FILE``; None if neither is set.

    Raises:
        ConfigError: both are set, or the file cannot be read.
    """
    direct, path = env.get(name), env.get(f"{name}_FILE")
    if direct and path:
        raise ConfigError(f"both {name} and {name}_FILE are set: keep one")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return Secret(handle.read().strip())
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path} ({exc.strerror})") from None
    return Secret(direct) if direct else None


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw} must be between {low:g} and {high:g}")
    return value


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    """``on`` or ``off`` (also true/false, yes/no, 1/0)."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "true", "yes", "1"):
        return True
    if raw in ("off", "false", "no", "0"):
        return False
    raise ConfigError(f"{name}={raw!r} must be on or off")


def read_credentials(
    env: Mapping[str, str], accounts: list[str], suffix: str
) -> tuple[dict[str, Secret], dict[str, str]]:
    """Each account's ``DIPLOBOT_<ACCOUNT>_<suffix>`` secret (or its ``_FILE``), and for each
    account without one, the variable to set: what every platform's ``read_settings`` reads.

    Raises:
        ConfigError: a variable and its ``_FILE`` are both set, or a file cannot be read.
    """
    found: dict[str, Secret] = {}
    missing: dict[str, str] = {}
    for account in accounts:
        name = f"DIPLOBOT_{env_name(account)}_{suffix}"
        secret = read_secret(name, env)
        if secret:
            found[account] = secret
        else:
            missing[account] = name
    return found, missing


def read_timeout(env: Mapping[str, str], name: str, default: float = 20.0) -> float:
    """A platform's timeout in seconds, from 0.1 to 600.

    Raises:
        ConfigError: the variable is not a number in that range.
    """
    return _float(env, name, default, 0.1, 600)


def ca_bundle(env: Mapping[str, str]) -> str | None:
    """An institution's own CA bundle, as requests would have read it from the environment."""
    return env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or None


def _duration(env: Mapping[str, str], name: str, default: float) -> float:
    """Seconds, or a number with s, m or h (``15m``)."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", raw)
    if not match:
        raise ConfigError(f"{name}={raw!r}: give seconds, or a number with s, m or h (15m)")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


@dataclass(frozen=True)
class TranslatorSettings:
    backend: str = "google"
    url: str | None = None
    key: Secret | None = field(default=None, repr=False)
    timeout: float = 20.0
    parallel: int = 4

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TranslatorSettings:
        return cls(
            backend=(env.get("DIPLOBOT_TRANSLATOR") or "google").strip().lower(),
            url=env.get("DIPLOBOT_TRANSLATOR_URL") or None,
            key=read_secret("DIPLOBOT_TRANSLATOR_KEY", env),
            timeout=_float(env, "DIPLOBOT_TRANSLATOR_TIMEOUT", 20.0, 0.1, 600),
            parallel=int(_float(env, "DIPLOBOT_TRANSLATOR_PARALLEL", 4, 1, 64)),
        )


DEFAULT_X_API_URL = "https://api.x.com"


@dataclass(frozen=True)
class XSettings:
    """X API settings: one app key pair, and per account an access token pair."""

    api_url: str = DEFAULT_X_API_URL
    timeout: float = 20.0
    api_key: Secret | None = field(default=None, repr=False)
    api_secret: Secret | None = field(default=None, repr=False)
    tokens: dict[str, tuple[Secret, Secret]] = field(default_factory=dict, repr=False)
    missing: dict[str, str] = field(default_factory=dict)  # account → what to set
    ca_bundle: str | None = None  # an institution's own CA, as requests would have read it

    @classmethod
    def from_env(cls, accounts: list[str], env: Mapping[str, str]) -> XSettings:
        api_key = read_secret("DIPLOBOT_X_API_KEY", env)
        api_secret = read_secret("DIPLOBOT_X_API_SECRET", env)
        tokens: dict[str, tuple[Secret, Secret]] = {}
        missing: dict[str, str] = {}
        for account in accounts:
            prefix = f"DIPLOBOT_{env_name(account)}"
            token = read_secret(f"{prefix}_ACCESS_TOKEN", env)
            secret = read_secret(f"{prefix}_ACCESS_SECRET", env)
            if api_key and api_secret and token and secret:
                tokens[account] = (token, secret)
                continue
            needed = [
                n
                for n, v in (
                    ("DIPLOBOT_X_API_KEY", api_key),
                    ("DIPLOBOT_X_API_SECRET", api_secret),
                    (f"{prefix}_ACCESS_TOKEN", token),
                    (f"{prefix}_ACCESS_SECRET", secret),
                )
                if not v
            ]
            missing[account] = ", ".join(needed)
        return cls(
            api_url=env.get("DIPLOBOT_X_API_URL") or DEFAULT_X_API_URL,
            timeout=_float(env, "DIPLOBOT_X_TIMEOUT", 20.0, 0.1, 600),
            api_key=api_key,
            api_secret=api_secret,
            tokens=tokens,
            missing=missing,
            ca_bundle=ca_bundle(env),
        )


DEFAULT_ACTIVE_LEASE = timedelta(seconds=15)
"""How long the active service's lease lasts without a renewal (bot/state/lease.py)."""
ACTIVE_LEASE_VARIABLE = "DIPLOBOT_ACTIVE_LEASE"

DEFAULT_WATCH_INTERVAL = 600.0
"""Seconds between two reads of each account's timeline (bot/publish/watch.py)."""


@dataclass(frozen=True)
class ServiceSettings:
    sync_interval: float = 30.0
    max_late: timedelta = timedelta(minutes=15)
    horizon_days: int = 7
    sweep_interval: float = 5.0
    http_addr: str = "127.0.0.1:8080"
    webhook_secret: Secret | None = field(default=None, repr=False)
    publish_parallel: int = 16  # chains delivered at once, all accounts together
    per_account: int = 4  # chains delivered at once on one account
    watch_interval: float = DEFAULT_WATCH_INTERVAL
    preview: bool = True  # /preview is served
    # The active replica's lease (bot/state/lease.py): renewed every third of it; a standby
    # takes over within this plus one poll of a third of it after the active one dies.
    active_lease: timedelta = DEFAULT_ACTIVE_LEASE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServiceSettings:
        return cls(
            sync_interval=_duration(env, "DIPLOBOT_SYNC_INTERVAL", 30.0),
            max_late=timedelta(seconds=_duration(env, "DIPLOBOT_MAX_LATE", 900.0)),
            horizon_days=int(_duration(env, "DIPLOBOT_HORIZON_DAYS", 7)),
            sweep_interval=_duration(env, "DIPLOBOT_SWEEP_INTERVAL", 5.0),
            http_addr=env.get("DIPLOBOT_HTTP_ADDR") or "127.0.0.1:8080",
            webhook_secret=read_secret("DIPLOBOT_WEBHOOK_SECRET", env),
            watch_interval=_duration(env, "DIPLOBOT_WATCH_INTERVAL", DEFAULT_WATCH_INTERVAL),
            preview=_switch(env, "DIPLOBOT_PREVIEW", True),
            active_lease=_active_lease(env),
        )


def _active_lease(env: Mapping[str, str]) -> timedelta:
    seconds = _duration(env, ACTIVE_LEASE_VARIABLE, DEFAULT_ACTIVE_LEASE.total_seconds())
    if not 1 <= seconds <= 3600:
        raise ConfigError(
            f"{ACTIVE_LEASE_VARIABLE}={env.get(ACTIVE_LEASE_VARIABLE)!r}: give 1 s to 1 h "
            "(15, 15s, 2m); a standby takes over within this plus a third of it"
        )
    return timedelta(seconds=seconds)


DEFAULT_LEASE = timedelta(seconds=60)
"""How long a claim outlives its owner's last sign of life (its heartbeat, or the claim). Well
above the X timeout (20 s by default): the heartbeat is what keeps a long request's claim, and
an owner whose heartbeat cannot be written (a full disk) has most likely finished its request
by the time its claim is taken."""
LEASE_VARIABLE = "DIPLOBOT_LEASE"


def lease_from_env(env: Mapping[str, str]) -> timedelta:
    """``DIPLOBOT_LEASE``: seconds (``90``, ``90s``) or minutes (``2m``), 1 s to 1 h.

    Raises:
        ConfigError: another value.
    """
    raw = (env.get(LEASE_VARIABLE) or "").strip().lower()
    if not raw:
        return DEFAULT_LEASE
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([sm]?)", raw)
    seconds = float(match[1]) * (60 if match[2] == "m" else 1) if match else 0.0
    if not 1 <= seconds <= 3600:
        raise ConfigError(
            f"{LEASE_VARIABLE}={raw!r}: give seconds (1 to 3600) or minutes (2m); keep it "
            "above DIPLOBOT_X_TIMEOUT"
        )
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"
    format: str | None = None  # "json" or "text"; None: text on a terminal, JSON otherwise

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LogSettings:
        return cls(
            level=(env.get("DIPLOBOT_LOG_LEVEL") or "INFO").upper(),
            format=env.get("DIPLOBOT_LOG_FORMAT") or None,
        )


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one process, read from its environment at start."""

    root: str = "."
    state: str | None = None
    state_password: Secret | None = field(default=None, repr=False)  # a PostgreSQL URL's
    state_dir: str | None = None  # the files beside the state (default: see bot.state.db)
    repo_url: Secret | None = field(default=None, repr=False)  # may carry a token
    repo_branch: str = "main"
    translator: TranslatorSettings = field(default_factory=TranslatorSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    lease: timedelta = DEFAULT_LEASE
    alert_webhook: Secret | None = field(default=None, repr=False)  # its URL embeds a token
    log: LogSettings = field(default_factory=LogSettings)
    git_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The environment git commands run in: the process's, without ``DIPLOBOT_*`` (which
    hold the repository's token and every other secret; git needs none of them)."""
    platform_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Every ``DIPLOBOT_*`` variable (and the CA bundle ones): credentials are per account,
    and accounts come from the content, so each platform reads its own from this copy once
    its accounts are known (:meth:`x`; ``read_settings`` in ``bot/platforms/<name>.py``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Raises:
        ConfigError: a variable holds a value that cannot be used (the message names it).
        """
        return cls(
            root=env.get("DIPLOBOT_ROOT") or ".",
            state=env.get("DIPLOBOT_STATE") or None,
            state_password=read_secret("DIPLOBOT_STATE_PASSWORD", env),
            state_dir=env.get("DIPLOBOT_STATE_DIR") or None,
            repo_url=read_secret("DIPLOBOT_REPO_URL", env),
            repo_branch=env.get("DIPLOBOT_REPO_BRANCH") or "main",
            translator=TranslatorSettings.from_env(env),
            service=ServiceSettings.from_env(env),
            lease=lease_from_env(env),
            alert_webhook=read_secret("DIPLOBOT_ALERT_WEBHOOK", env),
            log=LogSettings.from_env(env),
            git_env=_frozen({k: v for k, v in env.items() if not k.startswith("DIPLOBOT_")}),
            platform_env=_frozen(
                {
                    k: v
                    for k, v in env.items()
                    if k.startswith("DIPLOBOT_") or k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
                }
            ),
        )

    def x(self, accounts: list[str]) -> XSettings:
        """The X settings for these accounts (credentials, and what each one lacks).

        Raises:
            ConfigError: a variable and its ``_FILE`` are both set, a file cannot be read, or
                ``DIPLOBOT_X_TIMEOUT`` is not a number in range.
        """
        return XSettings.from_env(accounts, self.platform_env)


def from_process() -> Settings:
    """The settings of this process: the one read of ``os.environ`` (the CLI's entry point)."""
    return Settings.from_env(os.environ)


VARIABLES: dict[str, str] = {
    "DIPLOBOT_ROOT": "the content repository (default `.`; `--root` wins)",
    "DIPLOBOT_STATE": "the state database URL: `sqlite:///PATH` (default a SQLite file in "
    "ROOT/.diplobot/) or `postgresql+psycopg://USER@HOST:PORT/DATABASE` (docs/deploy.md, "
    "'PostgreSQL'); `--state` wins",
    "DIPLOBOT_STATE_PASSWORD": "the password of a PostgreSQL state URL that has none (keep it "
    "out of the URL, which commands and logs may show). Secret",
    "DIPLOBOT_STATE_DIR": "the folder of the files kept beside the state: the clone of "
    "`DIPLOBOT_REPO_URL` (its `repo/`), the dry-run outbox, Bluesky sessions (default the "
    "SQLite file's folder, or ROOT/.diplobot with PostgreSQL)",
    "DIPLOBOT_REPO_URL": "`run` follows this git repository (cloned beside the state); it may "
    "carry a token (`https://user:token@host/…`). Secret",
    "DIPLOBOT_REPO_BRANCH": "the branch followed (default `main`)",
    "DIPLOBOT_HTTP_ADDR": "where `run` serves its HTTP endpoints and `health` asks "
    "(default `127.0.0.1:8080`)",
    "DIPLOBOT_SYNC_INTERVAL": "how often the content is fetched or re-read: seconds, or `30s`, "
    "`5m`, `1h` (default 30 s)",
    "DIPLOBOT_MAX_LATE": "a delivery more than this late is EXPIRED instead of sent "
    "(default 15 min; same format)",
    "DIPLOBOT_HORIZON_DAYS": "how many days ahead posts are translated and recorded (default 7)",
    "DIPLOBOT_SWEEP_INTERVAL": "how often retries, crash recovery and the heartbeat run "
    "(default 5 s)",
    "DIPLOBOT_WATCH_INTERVAL": "how often each account's recent posts are read for another "
    "publisher of our content (default 10 min)",
    "DIPLOBOT_WEBHOOK_SECRET": "enables the content webhook `/hooks/git`. Secret",
    "DIPLOBOT_PREVIEW": "`off` stops `run` serving the editors' preview at `/preview` "
    "(default `on`)",
    "DIPLOBOT_LEASE": "how long a claim is trusted without a sign of life from its process: "
    "seconds, or minutes as `2m` (default 60 s; keep it above `DIPLOBOT_X_TIMEOUT`)",
    "DIPLOBOT_ACTIVE_LEASE": "with several `run` processes on one state database, one is "
    "active (publishes) and the others standby: how long the active one's lease lasts without "
    "renewal (renewed every third of it). A standby takes over within this plus a third of it "
    "after the active one dies: seconds, or `30s`, `2m` (default 15 s)",
    "DIPLOBOT_ALERT_WEBHOOK": "where alerts are POSTed as JSON. Secret",
    "DIPLOBOT_TRANSLATOR": "the machine translation backend: google (default), libre, "
    "microsoft, mymemory, deepl",
    "DIPLOBOT_TRANSLATOR_URL": "the backend's URL (required for libre)",
    "DIPLOBOT_TRANSLATOR_KEY": "the backend's key (libre, microsoft, deepl; mymemory: a contact "
    "e-mail). Secret",
    "DIPLOBOT_TRANSLATOR_TIMEOUT": "seconds per translation request (default 20)",
    "DIPLOBOT_TRANSLATOR_PARALLEL": "translations run at once (default 4)",
    "DIPLOBOT_X_API_KEY": "the X app's API key. Secret",
    "DIPLOBOT_X_API_SECRET": "the X app's API secret. Secret",
    "DIPLOBOT_<ACCOUNT>_ACCESS_TOKEN": "the account's X access token (`<ACCOUNT>`: its id in "
    "upper case, every other character than a letter or digit as `_`). Secret",
    "DIPLOBOT_<ACCOUNT>_ACCESS_SECRET": "the account's X access token secret. Secret",
    "DIPLOBOT_X_API_URL": "the X API base (default `https://api.x.com`)",
    "DIPLOBOT_X_TIMEOUT": "seconds to connect and between two reads of X's answer (default 20; "
    "a request ends after 3 × this)",
    "DIPLOBOT_MASTODON_TIMEOUT": "seconds to connect and between two reads of a Mastodon "
    "instance's answer (default 20; a request ends after 3 × this, and an image's processing "
    "is awaited as long). A Mastodon "
    "account's token is its `DIPLOBOT_<ACCOUNT>_ACCESS_TOKEN` (scopes `read write`)",
    "DIPLOBOT_<ACCOUNT>_APP_PASSWORD": "the Bluesky account's app password (Settings → "
    "Privacy and security → App passwords; never the account's own password). Secret",
    "DIPLOBOT_BLUESKY_PDS_URL": "the Bluesky PDS (default `https://bsky.social`)",
    "DIPLOBOT_BLUESKY_TIMEOUT": "seconds to connect and between two reads of the PDS's answer "
    "(default 20; a call ends after 3 × this)",
    "DIPLOBOT_BLUESKY_SESSION_DIR": "where Bluesky sessions are kept between runs, one file per "
    "account, mode 0600 (default `bluesky/` beside the state database)",
    "DIPLOBOT_FACEBOOK_API_URL": "the Graph API base, version included (default "
    "`https://graph.facebook.com/v21.0`)",
    "DIPLOBOT_FACEBOOK_APP_SECRET": "the Meta app's secret, when the app requires "
    "`appsecret_proof` (Require App Secret); optional. Secret",
    "DIPLOBOT_FACEBOOK_TIMEOUT": "seconds to connect and between two reads of Facebook's answer "
    "(default 20; a request ends after 3 × this)",
    "DIPLOBOT_<ACCOUNT>_BOT_TOKEN": "a Telegram account's bot token (from @BotFather; the bot "
    "is an administrator of the channel, allowed to post). Secret",
    "DIPLOBOT_TELEGRAM_API_URL": "the Telegram Bot API base (default `https://api.telegram.org`)",
    "DIPLOBOT_TELEGRAM_TIMEOUT": "seconds to connect, write and read each Telegram request "
    "(default 20; a request ends after 3 × this)",
    "DIPLOBOT_WEIBO_TASK_WINDOW": "how long a Weibo delivery stays a task for a person before it "
    "is EXPIRED: seconds, or `30m`, `12h` (default 24 h)",
    "DIPLOBOT_LOG_LEVEL": "`INFO` by default",
    "DIPLOBOT_LOG_FORMAT": "`json` or `text` (default: text on a terminal, JSON otherwise)",
    "REQUESTS_CA_BUNDLE": "an institution's own CA bundle, for X (also read by requests for "
    "the translators and the alert webhook)",
    "CURL_CA_BUNDLE": "the same, when `REQUESTS_CA_BUNDLE` is not set",
}
"""Every variable read here → what it does (docs/configuration.md's table; a test holds them
together). Every one marked Secret may be given as a file, with ``_FILE``."""
