"""Names with characters that change how the text around them reads, unseen (a bidi override,
a zero-width space, a line break), are refused, and the refusal does not repeat them."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.api.app import create_api_app
from bot.db import Database
from bot.ingest.importer import import_csv
from bot.models import Customer, Product
from bot.text_rules import has_unsafe_chars, without_unsafe_chars
from tests.test_api import _settings, post

SPOOFS = ["Velvet Red\u202egpj.exe", "Velvet\u200bRed", "Red\u2066Lip\u2069", "\ufeffRed", "Red\u00adLip",
          "Red\u200eLip", "Red\x85Lip", "Red\u2028Lip"]


@pytest.mark.parametrize("name", SPOOFS)
async def test_an_import_refuses_a_name_with_invisible_characters_and_does_not_echo_it(db: Database, name: str) -> None:
    data = f"sku,name,category,price\nLIP-1,{name},lips,1.00\nLIP-2,Plain,lips,2.00\n".encode()
    report = await import_csv(db, "catalog", data, label="catalog.csv")
    assert report.error_lines() == ["catalog.csv:2: name contains control or invisible formatting characters"]
    assert name not in "\n".join(report.error_lines())
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Product)) == 0


async def test_the_api_refuses_them_too(db: Database, database_url: str) -> None:
    async with TestClient(TestServer(create_api_app(_settings(database_url), db))) as client:
        for n, name in enumerate(SPOOFS):
            response = await post(client, "/api/v1/customers",
                                  {"customers": [{"external_id": f"C{n}", "name": name, "tier": "vip"}]})
            assert response.status == 422
            body = await response.text()
            assert name not in body and json.dumps(name)[1:-1] not in body
            assert "invisible" in body
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0


def test_names_people_write_are_kept() -> None:
    for name in ("Velvet Red", "唇釉 豆沙色", "Crème brûlée", "👨\u200d👩\u200d👧 family pack", "می\u200cخواهم", "R&D <Pro>"):
        assert not has_unsafe_chars(name)
        assert without_unsafe_chars(name) == name
    assert without_unsafe_chars("Ann\u202e") == "Ann"
