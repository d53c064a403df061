"""Settings: every variable read once from a mapping; what the wiring builds from them; and
docs/configuration.md's table held to the code."""

from __future__ import annotations

import ast
import re
from datetime import timedelta
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import VARIABLES, Settings
from bot.wiring import Wiring

ROOT = Path(__file__).resolve().parents[1]


def test_from_env_reads_every_section_from_the_mapping_it_is_given() -> None:
    """A dict is the environment: nothing comes from the process's own."""
    settings = Settings.from_env(
        {
            "DIPLOBOT_ROOT": "/content",
            "DIPLOBOT_STATE": "sqlite:////data/state.sqlite",
            "DIPLOBOT_REPO_URL": "https://user:tok@git.example/repo.git",
            "DIPLOBOT_REPO_BRANCH": "prod",
            "DIPLOBOT_TRANSLATOR": "Libre",
            "DIPLOBOT_TRANSLATOR_TIMEOUT": "5",
            "DIPLOBOT_SYNC_INTERVAL": "5m",
            "DIPLOBOT_HTTP_ADDR": "0.0.0.0:9000",
            "DIPLOBOT_LEASE": "2m",
            "DIPLOBOT_ALERT_WEBHOOK": "https://hooks.example/T0KEN",
            "DIPLOBOT_LOG_LEVEL": "debug",
            "DIPLOBOT_LOG_FORMAT": "json",
            "PATH": "/usr/bin",
            "GIT_CONFIG_COUNT": "1",
        }
    )
    assert (settings.root, settings.state, settings.repo_branch) == (
        "/content",
        "sqlite:////data/state.sqlite",
        "prod",
    )
    assert settings.repo_url is not None
    assert settings.repo_url.reveal() == "https://user:tok@git.example/repo.git"
    assert (settings.translator.backend, settings.translator.timeout) == ("libre", 5.0)
    assert settings.service.sync_interval == 300.0
    assert settings.service.http_addr == "0.0.0.0:9000"
    assert settings.lease == timedelta(minutes=2)
    assert (settings.log.level, settings.log.format) == ("DEBUG", "json")
    assert dict(settings.git_env) == {"PATH": "/usr/bin", "GIT_CONFIG_COUNT": "1"}
    assert Wiring(settings).notifier().webhook == "https://hooks.example/T0KEN"


def test_secrets_appear_in_no_repr() -> None:
    """The repository token, the webhook and the X keys are not in the settings' repr."""
    settings = Settings.from_env(
        {
            "DIPLOBOT_REPO_URL": "https://u:REPO-CANARY@h/r",
            "DIPLOBOT_ALERT_WEBHOOK": "https://h/HOOK-CANARY",
            "DIPLOBOT_X_API_KEY": "X-CANARY",
            "DIPLOBOT_TRANSLATOR_KEY": "TR-CANARY",
            "DIPLOBOT_WEBHOOK_SECRET": "WH-CANARY",
        }
    )
    assert "CANARY" not in repr(settings)


def test_x_settings_are_read_per_account_from_the_snapshot() -> None:
    """X credentials come from the environment read at start, per account, with what is
    missing named (a dry run is the wiring's choice: tests/platforms/test_registry.py)."""
    env = {
        "DIPLOBOT_X_API_KEY": "k",
        "DIPLOBOT_X_API_SECRET": "s",
        "DIPLOBOT_FRANCEDIPLO_EN_ACCESS_TOKEN": "t",
        "DIPLOBOT_FRANCEDIPLO_EN_ACCESS_SECRET": "ts",
        "DIPLOBOT_X_API_URL": "http://127.0.0.1:1",
        "REQUESTS_CA_BUNDLE": "/etc/ca.pem",
    }
    settings = Settings.from_env(env)
    env.clear()  # read once: later changes to the environment change nothing
    x = settings.x(["francediplo_EN", "francediplo_AR"])
    assert list(x.tokens) == ["francediplo_EN"]
    assert x.missing == {
        "francediplo_AR": "DIPLOBOT_FRANCEDIPLO_AR_ACCESS_TOKEN, "
        "DIPLOBOT_FRANCEDIPLO_AR_ACCESS_SECRET"
    }
    assert (x.api_url, x.ca_bundle) == ("http://127.0.0.1:1", "/etc/ca.pem")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DIPLOBOT_TRANSLATOR_TIMEOUT": "soon"}, "DIPLOBOT_TRANSLATOR_TIMEOUT='soon' is not a"),
        ({"DIPLOBOT_TRANSLATOR_PARALLEL": "100"}, "must be between 1 and 64"),
        ({"DIPLOBOT_SYNC_INTERVAL": "often"}, "give seconds, or a number with s, m or h"),
        ({"DIPLOBOT_LEASE": "0"}, "DIPLOBOT_LEASE='0': give seconds"),
        ({"DIPLOBOT_ALERT_WEBHOOK": "a", "DIPLOBOT_ALERT_WEBHOOK_FILE": "b"}, "keep one"),
        ({"DIPLOBOT_REPO_URL_FILE": "/nonexistent/secret"}, "DIPLOBOT_REPO_URL_FILE: cannot"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    """Each unusable value stops at start with a message that names the variable."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(env)


def test_cli_reports_a_bad_variable_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The CLI reads the settings first: a bad value is a usage error, exit 2."""
    from bot.cli import main

    monkeypatch.setenv("DIPLOBOT_LEASE", "forever")
    assert main(["validate", "--root", str(tmp_path)]) == 2
    assert "DIPLOBOT_LEASE='forever'" in capsys.readouterr().err


# -- docs/configuration.md -------------------------------------------------------------------


def variables_in_code() -> set[str]:
    """Every variable name settings.py spells out: string constants and f-string prefixes
    (``f"DIPLOBOT_{env_name(account)}"`` + ``_ACCESS_TOKEN`` is ``DIPLOBOT_<ACCOUNT>_…``)."""
    tree = ast.parse((ROOT / "bot/settings.py").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.update(re.findall(r"^(?:DIPLOBOT|REQUESTS|CURL)_[A-Z0-9_]+$", node.value))
    names.discard("DIPLOBOT_")
    names.update(f"DIPLOBOT_<ACCOUNT>_ACCESS_{what}" for what in ("TOKEN", "SECRET"))
    return names


def variables_in_docs() -> set[str]:
    text = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([A-Z0-9_<>]+)` \|", text, flags=re.MULTILINE))


def test_every_variable_in_the_code_is_listed_in_settings_variables() -> None:
    """VARIABLES (the documented list) names every variable settings.py reads."""
    assert variables_in_code() - {"DIPLOBOT_X_API_"} <= set(VARIABLES)


def test_the_configuration_table_matches_the_code() -> None:
    """docs/configuration.md lists exactly the variables of bot/settings.py."""
    assert variables_in_docs() == set(VARIABLES)
