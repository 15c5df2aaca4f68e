"""Log lines as an operator reads them: the chosen level, JSON on request, and never a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.logs import ROUTINE_LOGGERS, configure_logging
from bot.settings import Settings, load_settings

TOKEN = "123456:AAE-very-secret-token_part"
API_KEY = "hmac-key-of-the-shop-api"
TG_SECRET = "telegram-secret-header"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ROUTINE_LOGGERS}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    logging.captureWarnings(False)


def _settings(**overrides: str) -> Settings:
    return load_settings(_env_file=None, BOT_TOKEN=TOKEN, WEBHOOK_SECRET=API_KEY, TELEGRAM_SECRET_TOKEN=TG_SECRET,
                         DATABASE_URL="postgresql+asyncpg://shop:db-password-9@127.0.0.1/shop", **overrides)


def test_no_secret_reaches_a_log_line_not_even_inside_urls_and_tracebacks() -> None:
    out = io.StringIO()
    configure_logging(_settings(), out)
    log = logging.getLogger("aiogram.event")
    log.warning("POST https://api.telegram.org/bot%s/getUpdates failed", TOKEN)
    log.info("header %s and key %s", TG_SECRET, API_KEY)
    try:
        raise ConnectionError(f"Cannot connect to https://api.telegram.org/bot{TOKEN}/sendMessage")
    except ConnectionError:
        log.exception("request failed")
    logging.getLogger("bot").error("secret half alone: %s", TOKEN.split(":")[1])
    logging.getLogger("sqlalchemy").error("could not connect as shop:db-password-9")
    text = out.getvalue()
    for secret in (TOKEN, TOKEN.split(":")[1], API_KEY, TG_SECRET, "db-password-9"):
        assert secret not in text
    assert text.count("***") == 6 and "Traceback" in text and "getUpdates failed" in text


def test_json_format_writes_one_object_per_line() -> None:
    out = io.StringIO()
    configure_logging(_settings(LOG_FORMAT="json"), out)
    logging.getLogger("bot.run").info("running as @%s", "shop_bot")
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("bot.jobs").exception("job failed with token %s", TOKEN)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["level"] for r in records] == ["INFO", "ERROR"]
    assert records[0]["logger"] == "bot.run" and records[0]["message"] == "running as @shop_bot"
    assert records[0]["exception"] is None and "ZeroDivisionError" in records[1]["exception"]
    assert TOKEN not in out.getvalue() and records[0]["time"].endswith("+00:00")


def test_log_level_hides_lower_levels() -> None:
    out = io.StringIO()
    configure_logging(_settings(LOG_LEVEL="warning"), out)
    logging.getLogger("bot").info("routine")
    logging.getLogger("bot").warning("worth a look")
    assert "routine" not in out.getvalue() and "worth a look" in out.getvalue()


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
async def test_routine_job_runs_log_only_at_debug(level: str, shown: bool) -> None:
    out = io.StringIO()
    configure_logging(_settings(LOG_LEVEL=level), out)
    ran = []

    async def tick() -> None:
        ran.append(1)

    async def broken() -> None:
        raise RuntimeError("job broke")

    scheduler = AsyncIOScheduler()
    scheduler.add_job(tick, id="tick")  # no trigger: runs once, now
    scheduler.add_job(broken, id="broken")
    scheduler.start()
    try:
        for _ in range(200):
            if ran and "job broke" in out.getvalue():
                break
            await asyncio.sleep(0.01)
    finally:
        scheduler.shutdown(wait=False)
    text = out.getvalue()
    assert ran and "job broke" in text  # a failing job is always told
    assert ("Running job" in text) is shown and ("executed successfully" in text) is shown


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
async def test_a_tick_skipped_while_the_job_still_runs_logs_only_at_debug(level: str, shown: bool) -> None:
    out = io.StringIO()
    configure_logging(_settings(LOG_LEVEL=level), out)
    release = asyncio.Event()
    runs = []

    async def slow() -> None:
        runs.append(1)
        await release.wait()

    scheduler = AsyncIOScheduler()
    scheduler.add_job(slow, "interval", seconds=0.05, id="slow", max_instances=1)
    scheduler.start()
    try:
        for _ in range(300):
            if "maximum number of running instances" in out.getvalue() or (runs and not shown and _ > 40):
                break
            await asyncio.sleep(0.01)
    finally:
        release.set()
        scheduler.shutdown(wait=False)
    text = out.getvalue()
    assert runs == [1]  # the ticks were skipped: the first run never ended
    assert "WARNING" not in text
    assert ("maximum number of running instances" in text) is shown
