"""Which database a DATABASE_URL names, said so a person can find it (a SQLite default is relative
to the working folder: an import run from another folder used to create a new, empty file there
and report success without naming it)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def sqlite_file(url: str) -> Path | None:
    """The absolute path of a SQLite database file; None for another backend or an in-memory one."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if not parsed.get_backend_name() == "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser().resolve()


def describe(url: str) -> str:
    """The SQLite file's absolute path, or the URL with its password hidden."""
    path = sqlite_file(url)
    if path is not None:
        return f"SQLite {path}"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable DATABASE_URL)"
