"""Logging for `stockbot`: one handler on stderr, a level, text or JSON lines, and no secrets.

Secrets reach log lines in ways no call site controls (aiohttp and aiogram put the bot token in
request URLs and exception texts), so the mask sits on the handler and rewrites every record,
its exception and stack included, before any formatter sees it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy.engine import make_url

from bot.settings import Settings
from bot.text_rules import UNSAFE_CHARS

MASK = "***"
# Each 1-second job logs "Running job" and "executed successfully" on every run: ~350,000 lines
# a day at INFO. They are routine, so they show only at DEBUG; failures stay at ERROR.
ROUTINE_LOGGERS = ("apscheduler.executors", "alembic")  # alembic: plugin and migration chatter
# Libraries whose lower levels print what the bot keeps private: SQLAlchemy and the drivers log
# each statement's parameters (coupon codes, invite tokens, phones, e-mails), aiohttp each
# request line with its query. They follow LOG_LEVEL_LIBRARIES (WARNING unless asked), so
# LOG_LEVEL=DEBUG alone shows the bot's own detail.
LIBRARY_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "aiohttp")


class BusyTickIsRoutine(logging.Filter):
    """A 1-second job still running at its next tick makes APScheduler skip that tick with a
    WARNING ("maximum number of running instances reached"): dozens a minute while a 100k
    catalog loads, yet nothing is lost, as the running one does the tick's work. DEBUG, then."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "maximum number of running instances" in record.getMessage():
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_BUSY_TICK = BusyTickIsRoutine()


def secrets_of(settings: Settings) -> list[str]:
    """Every value that must never be printed: tokens, keys and the database password."""
    found = [value.get_secret_value() for value in
             (settings.BOT_TOKEN, settings.WEBHOOK_SECRET, settings.TELEGRAM_SECRET_TOKEN) if value is not None]
    if settings.BOT_TOKEN is not None:
        found.append(settings.BOT_TOKEN.get_secret_value().partition(":")[2])  # the secret half alone
    password = make_url(settings.DATABASE_URL).password
    if password:
        found.append(str(password))
    return found


class SecretMask(logging.Filter):
    """Replaces each secret with `***` in a record's message, exception and stack."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a token is masked whole before its secret half is looked for.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg, record.args = self.mask(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True

    def add(self, secret: str) -> None:
        """A secret made up at run time (the webhook's secret token)."""
        self.secrets = sorted({*self.secrets, secret}, key=len, reverse=True)


def escape(text: str) -> str:
    """`text` on one line, each control or invisible formatting character as an escape: a line
    break or bidi override in a logged value (a request path, a name) cannot forge or hide lines."""
    return UNSAFE_CHARS.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or f"\\u{ord(char):04x}"


class OneLine(logging.Filter):
    """Escapes a record's message so that it is one line and shows every character it holds
    (tracebacks, which are the code's own, keep their lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = escape(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


_ONE_LINE = OneLine()


class JsonLines(logging.Formatter):
    """One JSON object per line, for log collectors: time, level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        exception = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else None)
        if record.stack_info:
            exception = "\n".join(filter(None, (exception, record.stack_info)))
        return json.dumps({
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "exception": exception,
        }, ensure_ascii=False)


def configure_logging(settings: Settings, stream: TextIO | None = None) -> SecretMask:
    """Send every log record through one masked handler at LOG_LEVEL; returns the mask."""
    handler = logging.StreamHandler(stream or sys.stderr)
    mask = SecretMask(secrets_of(settings))
    handler.addFilter(mask)
    if settings.LOG_FORMAT == "json":
        handler.setFormatter(JsonLines())  # JSON escapes line breaks itself
    else:
        handler.addFilter(_ONE_LINE)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = logging.getLevelName(settings.LOG_LEVEL)
    root.setLevel(level)
    for name in ROUTINE_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.getLevelName(settings.LOG_LEVEL_LIBRARIES)))
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    if _BUSY_TICK not in scheduler_log.filters:
        scheduler_log.addFilter(_BUSY_TICK)
    logging.captureWarnings(True)
    return mask
