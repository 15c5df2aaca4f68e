"""`stockbot doctor`: is this set-up ready? One line per check, ✓ or ✗ with the fix; exit 0 or 1.

It changes nothing: the database is opened but never created or migrated, getMe is the only Bot
API call. `start_warnings` is the part that needs no network and no heavy import, for `stockbot
run` to log at start.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from bot.dbtarget import describe, sqlite_file
from bot.settings import Settings

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")
CJK_FILE_KEYS = ("notosanscjk", "notosanssc", "sourcehansans", "wqy")  # as charts.find_font looks
NO_ADMINS = ("no admins: nobody can grant roles or import in chat. Send /whoami to the bot and put "
             "your id in ADMIN_IDS")
NO_CJK_FONT = ("no CJK font: charts for Chinese users fall back to English labels. Install one "
               "(Debian: apt-get install fonts-noto-cjk)")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    text: str

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.name}: {self.text}"


def start_warnings(settings: Settings) -> list[str]:
    """The ✗ that `run` can see at start without the network: each becomes a warning in its log."""
    warnings = []
    if not settings.ADMIN_IDS:
        warnings.append(NO_ADMINS + " (or /grant admin from an admin granted earlier)")
    if not cjk_font_file():
        warnings.append(NO_CJK_FONT)
    return warnings


def cjk_font_file() -> Path | None:
    for folder in FONT_DIRS:
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if any(key in path.name.lower() for key in CJK_FILE_KEYS):
                return path
    return None


async def run_doctor(settings: Settings, args: argparse.Namespace) -> int:
    checks = [Check("settings", True, "read from the environment" + (" and .env" if Path(".env").exists() else ""))]
    database_check, admins_in_db = await _database(settings, args.timeout)
    checks.append(database_check)
    checks.append(await _bot_api(settings, args.timeout))
    checks.append(_admins(settings, admins_in_db))
    checks.append(await asyncio.to_thread(_font))
    checks.extend(_webhook(settings))
    checks.extend(await _sources(settings, args.timeout))
    for check in checks:
        print(check.line())
    return 0 if all(check.ok for check in checks) else 1


def print_settings_problem(problem: Exception) -> int:
    """A setting that does not even load is the first ✗ (the other checks need the settings)."""
    print(Check("settings", False, str(problem)).line())
    return 1


async def _database(settings: Settings, timeout: float) -> tuple[Check, int]:
    from bot.db import create_database  # deferred (CLI start path): SQLAlchemy's async engine
    from bot.migrate import at_head
    from bot.models import Role, StaffMember

    where = describe(settings.DATABASE_URL)
    path = sqlite_file(settings.DATABASE_URL)
    if path is not None and not path.exists():
        return Check("database", False, f"{where} does not exist yet; `stockbot db upgrade` creates it "
                                        f"(is DATABASE_URL right? a relative path follows the working folder)"), 0
    try:
        db = create_database(settings)
    except Exception as exc:  # noqa: BLE001 - any refusal of the URL is this one line
        return Check("database", False, f"DATABASE_URL cannot be used: {_first_line(exc)}"), 0
    try:
        async with asyncio.timeout(timeout):
            migrated = await at_head(db)
            async with db.read_session() as session:
                admins = await session.scalar(select(func.count()).select_from(StaffMember)
                                              .where(StaffMember.role == Role.ADMIN.value)) if migrated else 0
    except Exception as exc:  # noqa: BLE001 - unreachable, refused, timed out: all are "cannot open"
        return Check("database", False, f"cannot open {where}: {_first_line(exc)}; check DATABASE_URL "
                                        f"and that the server runs"), 0
    finally:
        await db.dispose()
    if not migrated:
        return Check("database", False, f"{where} is reachable but not migrated; run `stockbot db upgrade`"), 0
    return Check("database", True, f"{where}, reachable and migrated"), admins or 0


async def _bot_api(settings: Settings, timeout: float) -> Check:
    if settings.BOT_TOKEN is None:
        return Check("Bot API", False, "BOT_TOKEN is not set; get a token from @BotFather and set BOT_TOKEN")
    from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramUnauthorizedError  # deferred

    from bot.app import create_bot  # deferred (CLI start path): aiogram

    bot = create_bot(settings)
    try:
        me = await bot.get_me(request_timeout=max(1, int(timeout)))
    except TelegramUnauthorizedError:
        return Check("Bot API", False, "the Bot API refused BOT_TOKEN (401); copy it again from @BotFather")
    except (TelegramNetworkError, OSError, TimeoutError):
        return Check("Bot API", False, f"cannot reach {settings.TELEGRAM_API_URL} (offline?); check the "
                                       f"network or TELEGRAM_API_URL")
    except TelegramAPIError as exc:
        return Check("Bot API", False, f"{settings.TELEGRAM_API_URL} answered getMe with {type(exc).__name__}; "
                                       f"is TELEGRAM_API_URL a Bot API server?")
    finally:
        await bot.session.close()
    return Check("Bot API", True, f"token works: @{me.username} via {settings.TELEGRAM_API_URL}")


def _admins(settings: Settings, admins_in_db: int) -> Check:
    if settings.ADMIN_IDS:
        return Check("admins", True, f"{len(settings.ADMIN_IDS)} in ADMIN_IDS")
    if admins_in_db:
        return Check("admins", True, f"ADMIN_IDS is empty; {admins_in_db} granted in chat")
    return Check("admins", False, NO_ADMINS)


def _font() -> Check:
    from bot.reports.charts import find_font  # deferred (heavy): matplotlib

    if find_font().cjk:
        return Check("CJK font", True, "found: Chinese chart labels will show")
    return Check("CJK font", False, NO_CJK_FONT)


def _webhook(settings: Settings) -> list[Check]:
    checks = []
    if not settings.WEBHOOK_URL:
        checks.append(Check("webhook", True, "not used (`stockbot run` polls; `--webhook` needs WEBHOOK_URL)"))
    elif not settings.WEBHOOK_URL.startswith("https://"):
        checks.append(Check("webhook", False, f"WEBHOOK_URL {settings.WEBHOOK_URL} must start with https:// "
                                              f"(Telegram posts only to HTTPS)"))
    else:
        checks.append(Check("webhook", True, f"{settings.WEBHOOK_URL}{settings.WEBHOOK_PATH}"))
    if settings.WEBHOOK_SECRET is None:
        checks.append(Check("integration API", True, "off: WEBHOOK_SECRET is unset, so signed routes answer "
                                                     "503 (set it to use the API)"))
    else:
        checks.append(Check("integration API", True, f"signed, on {settings.API_HOST}:{settings.API_PORT}"))
    return checks


async def _sources(settings: Settings, timeout: float) -> list[Check]:
    """SOURCE_DATABASE_URL and SOURCE_STOCK_QUERY, where this version has them."""
    url = getattr(settings, "SOURCE_DATABASE_URL", None)
    query = getattr(settings, "SOURCE_STOCK_QUERY", None)
    if not url and not query:
        return []
    if not url or not query:
        missing = "SOURCE_STOCK_QUERY" if url else "SOURCE_DATABASE_URL"
        return [Check("source", False, f"{missing} is unset; the source poller needs both settings")]
    value = url.get_secret_value() if hasattr(url, "get_secret_value") else str(url)
    return [await _reachable("source", value, timeout)]


async def _reachable(name: str, url: str, timeout: float) -> Check:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    try:
        engine = create_async_engine(url)
    except Exception as exc:  # noqa: BLE001
        return Check(name, False, f"SOURCE_DATABASE_URL cannot be used: {_first_line(exc)}")
    try:
        async with asyncio.timeout(timeout), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        return Check(name, False, f"cannot open {describe(url)}: {_first_line(exc)}")
    finally:
        await engine.dispose()
    return Check(name, True, f"{describe(url)} reachable")


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return ((str(cause).strip().splitlines() or [type(cause).__name__])[0] or type(cause).__name__)[:200]
