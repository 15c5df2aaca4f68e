"""Database trouble as an integrator meets it: 503 with Retry-After, never 500; health 503; one log
line per spell of trouble, not a traceback per request; and everything back once it ends."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import make_url

from bot.api.app import create_api_app
from bot.api.signing import signed_headers
from bot.db import Database, create_database
from bot.sandbox.faults import CuttableLink, sqlite_disk_full
from bot.settings import load_settings
from tests.conftest import ON_POSTGRES
from tests.factories import add_product

SECRET = "s3cret-for-tests"
EVENTS = "/api/v1/stock-events"


class Trouble:
    """Starts and ends this backend's kind of database trouble: a cut connection on PostgreSQL,
    a full disk on SQLite."""

    def __init__(self, db: Database, link: CuttableLink | None) -> None:
        self.db, self.link = db, link
        self._full: Any = None

    async def start(self) -> None:
        if self.link is not None:
            await self.link.cut()
        else:
            self._full = sqlite_disk_full(self.db.engine)
            self._full.__enter__()

    async def end(self) -> None:
        if self.link is not None:
            await self.link.mend()
        else:
            self._full.__exit__(None, None, None)


@pytest.fixture
async def troubled(database_url: str, db: Database) -> AsyncIterator[tuple[TestClient, Trouble]]:
    link = None
    url = database_url
    if ON_POSTGRES:  # the app reaches PostgreSQL through a link the test can cut
        parsed = make_url(database_url)
        link = CuttableLink(parsed.host or "127.0.0.1", parsed.port or 5432)
        await link.start()
        url = parsed.set(host="127.0.0.1", port=link.port).render_as_string(hide_password=False)
    app_db = create_database(url)
    settings = load_settings(_env_file=None, DATABASE_URL=url, BOT_TOKEN="123456:SANDBOX-TOKEN",
                             QUIET_HOURS="", WEBHOOK_SECRET=SECRET)
    async with db.transaction() as session:
        await add_product(session, "LIP-1", stock={"SH": 10})
    try:
        async with TestClient(TestServer(create_api_app(settings, app_db))) as client:
            yield client, Trouble(app_db, link)
    finally:
        await app_db.dispose()
        if link is not None:
            await link.cut()


def _event(n: int) -> bytes:
    return json.dumps({"events": [{"event_id": f"e-{n}", "sku": "LIP-1", "warehouse": "SH", "delta": -1}]}).encode()


async def _post(client: TestClient, body: bytes):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json", **signed_headers(SECRET, "POST", EVENTS, body)}
    return await client.post(EVENTS, data=body, headers=headers)


async def test_database_trouble_answers_503_with_retry_after_and_logs_one_line_per_spell(
    troubled: tuple[TestClient, Trouble], caplog: pytest.LogCaptureFixture,
) -> None:
    client, trouble = troubled
    assert (await _post(client, _event(0))).status == 200
    caplog.set_level(logging.INFO)
    await trouble.start()
    for n in range(1, 11):
        refused = await _post(client, _event(n))
        assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0
        assert "unavailable" in (await refused.json())["error"]
        health = await client.get("/api/v1/health")
        assert (health.status, await health.json()) == (503, {"status": "unavailable"})
    problems = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(problems) == 1 and problems[0].levelno == logging.ERROR  # the spell, once
    assert not any(record.exc_info for record in caplog.records)  # no traceback per request

    await trouble.end()
    back = await _post(client, _event(11))
    assert (back.status, await back.json()) == (200, {"applied": 1, "duplicates": 0})
    health = await client.get("/api/v1/health")
    assert (health.status, await health.json()) == (200, {"status": "ok"})
    assert [r.getMessage() for r in caplog.records if "available again" in r.getMessage()]
    # Nothing refused during the spell was half applied: a retry applies it once.
    assert (await (await _post(client, _event(5))).json()) == {"applied": 1, "duplicates": 0}
