"""Where the state is kept and how it is opened: ``--state`` to a URL, the engine (made by
:mod:`bot.state.dialect`, migrated by :mod:`bot.state.migrations`), and what to tell the
operator when the database cannot be used."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import DatabaseError

from bot.errors import StateError
from bot.state.dialect import check_url, damaged, engine_for, is_damage, location, sqlite_file
from bot.state.migrations import migrate


def state_url(root: Path, state: str | None) -> str:
    """The SQLAlchemy URL for ``--state`` (a path or a URL), default ROOT/.diplobot/state.sqlite.

    Raises:
        ConfigError: an unsupported URL scheme.
    """
    if not state:
        return f"sqlite:///{(root / '.diplobot' / 'state.sqlite').resolve()}"
    if "://" not in state:
        return f"sqlite:///{Path(state).resolve()}"
    return check_url(state)


def state_dir(url: str, root: Path, chosen: str | None = None) -> Path:
    """The folder for files kept beside the state: the outbox, the followed git clone,
    Bluesky's sessions. ``chosen`` (``DIPLOBOT_STATE_DIR``) wins; else the SQLite file's
    folder, or ROOT/.diplobot for a database that is not a file (PostgreSQL)."""
    if chosen:
        return Path(chosen)
    path = sqlite_file(url)
    return path.parent if path is not None else root / ".diplobot"


def state_exists(url: str) -> bool:
    """Whether a SQLite state file is already there (other databases always exist: an
    empty PostgreSQL database is set up by the first command that opens it)."""
    path = sqlite_file(url)
    return path is None or path.exists()


def open_engine(url: str, *, password: str | None = None) -> Engine:
    """Open (creating and migrating when needed) the state database at ``url`` (with
    ``password`` when it is a PostgreSQL URL without one).

    Raises:
        StateError: the file is damaged, is not a diplobot state database, or was migrated
            by a newer diplobot.
    """
    engine = engine_for(url, password=password)
    try:
        migrate(engine)
    except DatabaseError as exc:
        engine.dispose()
        raise state_error(exc, url) from None
    except StateError:
        engine.dispose()
        raise
    return engine


def state_error(exc: BaseException, url: str) -> StateError:
    """What to tell the operator about a database error from the state at ``url``."""
    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    where = location(url)  # never the password of a URL
    if is_damage(detail):
        return StateError(damaged(where, detail))
    return StateError(f"the state database {where} cannot be used: {detail}")


def database_problem(exc: BaseException, url: str) -> StateError | None:
    """:func:`state_error` for a database error met after the state was opened (a page
    damaged in the middle of the file is only found when it is read); None for others."""
    return state_error(exc, url) if isinstance(exc, DatabaseError) else None
