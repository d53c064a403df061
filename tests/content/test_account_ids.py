"""Account ids name their credential variables; two ids naming the same ones are refused.

`france_diplo` and `france-diplo` both read DIPLOBOT_FRANCE_DIPLO_ACCESS_TOKEN: both accounts
would publish as whichever account that token belongs to, so the English text went out on the
French account.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.envname import env_name

Check = Callable[..., Any]  # the `check` fixture of conftest.py
ACCOUNTS = "schedules/accounts.yaml"


def accounts_file(first: str, second: str) -> str:
    return (
        "timezone: Europe/Paris\n"
        "accounts:\n"
        f"  {first}: {{lang: fr, handle: francediplo}}\n"
        "  francediplo_AR: {lang: ar, handle: francediplo_AR}\n"
        f"  {second}: {{lang: en, handle: francediplo_EN}}\n"
        "  francediplo_ES: {lang: es, handle: francediplo_ES}\n"
    )


@pytest.mark.parametrize(
    ("first", "second", "variable"),
    [
        ("france_diplo", "france-diplo", "FRANCE_DIPLO"),
        ("francediplo", "FranceDiplo", "FRANCEDIPLO"),
        ("france.diplo", "france diplo", "FRANCE_DIPLO"),
    ],
)
def test_two_account_ids_reading_the_same_credentials_are_refused(
    check: Check, first: str, second: str, variable: str
) -> None:
    """The second id gets the error, at its key, naming the first and the shared variables."""
    result = check({ACCOUNTS: accounts_file(first, second)})
    assert result.code == 1, result.out + result.err
    where, message = result.only_error()
    assert where == f"{ACCOUNTS}:5:3"
    assert message == (
        f"account '{second}' reads the same credentials as account '{first}' (line 3): both "
        f"are DIPLOBOT_{variable}_ACCESS_TOKEN and DIPLOBOT_{variable}_ACCESS_SECRET, so both "
        "would publish as the same account (rename one of them: account ids must differ in "
        "more than case, '-' or '_')"
    )


def test_account_ids_that_differ_in_letters_are_accepted(check: Check) -> None:
    """The bundled ids (francediplo, francediplo_EN, ...) each have their own variables."""
    result = check({ACCOUNTS: accounts_file("francediplo", "francediplo_EN")})
    assert (result.code, result.out.strip()) == (0, "valid")


@pytest.mark.parametrize(
    "account", ["francediplo", "francediplo_EN", "france-diplo", "France.Diplo", "é_x", "a b"]
)
def test_the_loader_and_the_x_publisher_name_credentials_the_same_way(account: str) -> None:
    """The collision check is only as good as its agreement with the variables the X
    credentials are read from (bot/settings.py)."""
    from bot.settings import Settings

    name = env_name(account)
    settings = Settings.from_env(
        {
            "DIPLOBOT_X_API_KEY": "k",
            "DIPLOBOT_X_API_SECRET": "s",
            f"DIPLOBOT_{name}_ACCESS_TOKEN": "t",
            f"DIPLOBOT_{name}_ACCESS_SECRET": "ts",
        }
    )
    assert list(settings.x([account]).tokens) == [account]
