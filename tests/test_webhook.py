"""Webhook mode's door: bad secrets, bad bodies and replayed updates, against the real dispatcher
and the sandbox (the route is `stockbot run --webhook`'s own, served by a test server)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.db import create_database
from bot.models import Product
from bot.webhook import SECRET_HEADER, add_webhook_route
from tests.factories import ADMIN, PURCHASER, add_product
from tests.harness import Harness

SECRET = "tg-secret"
PATH = "/telegram/webhook"


def _update(update_id: int, user_id: int, text: str) -> dict[str, Any]:
    command = text.split()[0]
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 0, "text": text, "chat": {"id": user_id, "type": "private"},
        "from": {"id": user_id, "is_bot": False, "first_name": "U"},
        "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}]}}


def _client(h: Harness, db=None) -> TestClient:  # type: ignore[no-untyped-def]
    app = web.Application()
    add_webhook_route(app, h.runtime.dispatcher, h.runtime.bot, path=PATH, secret_token=SECRET, db=db or h.db)
    return TestClient(TestServer(app))


async def _send(client: TestClient, body: bytes | dict[str, Any], secret: str | bytes = SECRET) -> int:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {SECRET_HEADER: secret, "Content-Type": "application/json"}
    async with client.post(PATH, data=raw, headers=headers) as response:
        return response.status


async def _on_hand(h: Harness) -> int:
    async with h.db.read_session() as session:
        return await session.scalar(select(Product.on_hand_total).where(Product.sku == "LIP-1"))


async def _answered(h: Harness, user: int, text: str) -> None:
    for _ in range(250):
        await h.settle()
        if any(text in m.plain_text for m in h.sandbox.messages(user)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {text!r} among {[m.plain_text for m in h.sandbox.messages(user)]}")


async def test_a_non_ascii_or_wrong_secret_is_403(bot_harness: Harness) -> None:
    async with _client(bot_harness) as client:
        for secret in ("tg-secrét", "ключ", "wrong", ""):
            assert await _send(client, _update(1, ADMIN, "/help"), secret) == 403
        async with client.post(PATH, data=b"{}") as answer:
            assert answer.status == 403  # no header at all
        async with client.post(PATH, data=b"{}", headers={SECRET_HEADER: "\xff\xfe"}) as answer:
            assert answer.status == 403  # bytes that are not UTF-8
    assert bot_harness.sandbox.messages(ADMIN) == []


@pytest.mark.parametrize("body", [
    b"{", b"not json", b"\xff\xfe{}", b"", b"[]", b"5", b'{"update_id": "7"}', b'{"message": {}}',
    b'{"update_id": 7, "message": 5}', b'{"update_id": 7, "message": {"text": "/help"}}',
    b"[" * 100_000 + b"]" * 100_000, b'{"update_id": 7, "message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
], ids=lambda body: repr(body[:40]))
async def test_a_malformed_body_or_the_wrong_shape_is_400_and_nothing_is_handled(
    bot_harness: Harness, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    async with _client(bot_harness) as client:
        assert await _send(client, body) == 400
        await asyncio.sleep(0.05)
    await bot_harness.settle()
    assert bot_harness.sandbox.messages(ADMIN) == []
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage() or r.exc_info]


async def test_an_update_handled_before_is_200_and_not_handled_again_in_any_process(bot_harness: Harness) -> None:
    h = bot_harness
    await h.reply(ADMIN, f"/grant {PURCHASER} purchaser")
    async with h.db.transaction() as session:
        await add_product(session, "LIP-1", stock={"SH": 5})
    other_process = create_database(h.services.settings.DATABASE_URL)  # its own engine, as a second `stockbot run`
    try:
        async with _client(h) as one, _client(h, other_process) as two:
            receive = _update(900, PURCHASER, "/receive LIP-1 6 SH")
            statuses = await asyncio.gather(_send(one, receive), _send(two, receive), _send(one, receive))
            assert statuses == [200, 200, 200]
            await _answered(h, PURCHASER, "Received 6")
            await asyncio.sleep(0.2)
            await h.settle()
    finally:
        await other_process.dispose()
    assert await _on_hand(h) == 11  # 5 + 6, once
    assert sum("Received 6" in m.plain_text for m in h.sandbox.messages(PURCHASER)) == 1
