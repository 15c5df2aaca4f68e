"""What reaches the log cannot forge lines, and holds no coupon code or customer data."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.api.app import create_api_app
from bot.db import Database
from bot.logs import LIBRARY_LOGGERS, ROUTINE_LOGGERS, configure_logging
from bot.models import Coupon, Customer
from bot.settings import load_settings
from tests.factories import add_product
from tests.test_api import _settings, add_coupon

@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in (*ROUTINE_LOGGERS, *LIBRARY_LOGGERS)}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    logging.captureWarnings(False)


def _log_to(out: io.StringIO, database_url: str, **overrides: str) -> None:
    configure_logging(load_settings(_env_file=None, DATABASE_URL=database_url, **overrides), out)


async def test_a_line_break_in_a_path_cannot_forge_a_log_line(db: Database, database_url: str) -> None:
    out = io.StringIO()
    _log_to(out, database_url)
    async with TestClient(TestServer(create_api_app(_settings(database_url), db))) as client:
        forged = "/api/v1/nope%0A2026-12-07 10:00:00,000 INFO bot.api: POST /api/v1/orders 200 1.0ms admin"
        assert (await client.get(forged)).status == 404
        assert (await client.get("/api/v1/nope%E2%80%AEtxt.exe%0D%1B[2J")).status == 404
    lines = out.getvalue().splitlines()
    api_lines = [line for line in lines if " bot.api: " in line]
    assert len(api_lines) == 2 and all(line.startswith("20") for line in lines)
    assert not any(line.startswith("2026-12-07 10:00:00") for line in lines)
    assert "nope\\n2026-12-07" in api_lines[0]
    assert "\u202e" not in out.getvalue() and "\x1b" not in out.getvalue() and "\\u202e" in api_lines[1]


async def test_a_coupon_code_in_a_path_no_route_takes_is_not_logged(
    db: Database, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await add_coupon_for_logging(db)
    caplog.set_level(logging.INFO, logger="bot.api")
    async with TestClient(TestServer(create_api_app(_settings(database_url), db))) as client:
        for path in ("/api/v1/coupons/SECRETCODE7/redeem/", "/api/v1/coupons/SECRETCODE7/", "/api/v1/COUPONS/SECRETCODE7/x/y",
                     "/api/v1/coupons/SECRETCODE7/redeem?code=SECRETCODE7"):
            await client.post(path, data=b"{}")
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "SECRETCODE7" not in text
    assert "/api/v1/coupons/{code}/redeem/ 404" in text


async def add_coupon_for_logging(db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "LIP-1")
        session.add(Customer(external_id="C1", name="Ann", tier="regular"))
    await add_coupon(db, "SECRETCODE7")


@pytest.mark.parametrize(("libraries", "shown"), [(None, False), ("DEBUG", True)])
async def test_debug_logging_keeps_sql_parameters_out_unless_asked(
    db: Database, database_url: str, libraries: str | None, shown: bool
) -> None:
    out = io.StringIO()
    _log_to(out, database_url, LOG_LEVEL="DEBUG", **({"LOG_LEVEL_LIBRARIES": libraries} if libraries else {}))
    logging.getLogger("bot").debug("the bot's own detail")
    async with db.read_session() as session:
        await session.scalar(select(Coupon.id).where(Coupon.code == "PARAM-CODE-42"))
    text = out.getvalue()
    assert "the bot's own detail" in text
    assert ("PARAM-CODE-42" in text) is shown
