"""How an account id names its credential variables: one rule, shared by the loader (which
refuses two ids that name the same variables) and the publishers (which read them).

Kept apart from ``bot.settings`` so that loading content, a pure stage, need not read the
settings to apply it (tests/content/test_account_ids.py holds the two together).
"""

from __future__ import annotations

import re


def env_name(account: str) -> str:
    """``francediplo_EN`` → ``FRANCEDIPLO_EN``: the account's part of its variable names.

    Every character other than an ASCII letter or digit becomes ``_`` and letters are upper
    case, so ``france-diplo``, ``france_diplo`` and ``France_Diplo`` all read
    ``DIPLOBOT_FRANCE_DIPLO_*``.
    """
    return re.sub(r"[^A-Za-z0-9]", "_", account).upper()
