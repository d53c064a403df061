"""The only place loguru sinks are configured.

Human lines on a terminal, one JSON object per line otherwise (``DIPLOBOT_LOG_FORMAT=json``).
The standard library's loggers (requests, urllib3, deep-translator, tweepy, apscheduler) are
routed into loguru; those whose DEBUG lines carry credentials or post text in URLs (urllib3,
requests, oauthlib, requests_oauthlib, tweepy, aiohttp) are held at WARNING whatever the level.
"""

from __future__ import annotations

import logging
import sys

from loguru import logger

QUIET_LOGGERS = (
    "urllib3",
    "requests",
    "oauthlib",
    "requests_oauthlib",
    "tweepy",
    "aiohttp",
    "deepl",
    "httpx",  # its INFO line per request carries the URL: a Telegram bot token is in it
    "httpcore",
    "telegram",
)
NOISY_LOGGERS = ("apscheduler",)  # one INFO line per job run: kept at WARNING


class InterceptHandler(logging.Handler):
    """Send stdlib log records to loguru (the recipe from loguru's documentation)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info).bind(source=record.name).log(
            level, "stdlib: {}", record.getMessage()
        )


def setup_logging(level: str = "INFO", fmt: str | None = None) -> None:
    """``level`` and ``fmt`` (``json`` or ``text``; None: text on a terminal, JSON otherwise)
    come from ``DIPLOBOT_LOG_LEVEL`` and ``DIPLOBOT_LOG_FORMAT`` (``bot.settings.LogSettings``)."""
    level = level.upper()
    fmt = fmt or ("text" if sys.stderr.isatty() else "json")
    logger.remove()
    if fmt == "json":
        logger.add(sys.stderr, level=level, serialize=True, diagnose=False, backtrace=False)
    else:
        logger.add(
            sys.stderr,
            level=level,
            diagnose=False,
            format="{time:YYYY-MM-DD HH:mm:ss} {level: <7} {message} {extra}",
        )
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    for name in (*QUIET_LOGGERS, *NOISY_LOGGERS):
        logging.getLogger(name).setLevel(logging.WARNING)
