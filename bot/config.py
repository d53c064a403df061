"""Settings from the environment. Secrets are read here and never appear in a repr or a log.

Every secret variable ``X`` may instead be given as ``X_FILE``: the path of a file holding it
(Docker and Kubernetes secrets), with surrounding whitespace stripped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

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


def read_secret(name: str, env: Mapping[str, str] | None = None) -> Secret | None:
    """The secret in ``$name``, or in the file named by ``$name_FILE``; None if neither is set.

    Raises:
        ConfigError: both are set, or the file cannot be read.
    """
    env = os.environ if env is None else env
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


@dataclass(frozen=True)
class TranslatorSettings:
    backend: str = "google"
    url: str | None = None
    key: Secret | None = field(default=None, repr=False)
    timeout: float = 20.0
    parallel: int = 4

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TranslatorSettings:
        env = os.environ if env is None else env
        return cls(
            backend=(env.get("DIPLOBOT_TRANSLATOR") or "google").strip().lower(),
            url=env.get("DIPLOBOT_TRANSLATOR_URL") or None,
            key=read_secret("DIPLOBOT_TRANSLATOR_KEY", env),
            timeout=_float(env, "DIPLOBOT_TRANSLATOR_TIMEOUT", 20.0, 0.1, 600),
            parallel=int(_float(env, "DIPLOBOT_TRANSLATOR_PARALLEL", 4, 1, 64)),
        )


@dataclass(frozen=True)
class XSettings:
    """X API settings: one app key pair, and per account an access token pair."""

    api_url: str
    timeout: float
    api_key: Secret | None = field(default=None, repr=False)
    api_secret: Secret | None = field(default=None, repr=False)
    tokens: dict[str, tuple[Secret, Secret]] = field(default_factory=dict, repr=False)
    missing: dict[str, str] = field(default_factory=dict)  # account → what to set

    @classmethod
    def from_env(cls, accounts: list[str], env: Mapping[str, str] | None = None) -> XSettings:
        from bot.platforms.x import DEFAULT_API_URL, env_name

        env = os.environ if env is None else env
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
            api_url=env.get("DIPLOBOT_X_API_URL") or DEFAULT_API_URL,
            timeout=_float(env, "DIPLOBOT_X_TIMEOUT", 20.0, 0.1, 600),
            api_key=api_key,
            api_secret=api_secret,
            tokens=tokens,
            missing=missing,
        )
