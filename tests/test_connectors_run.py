"""The connectors as an operator runs them: `stockbot run` as a process, with the shop's own
database (SQLite or PostgreSQL) that the test changes, and Shopify and WooCommerce deliveries
posted to its HTTP port; `stockbot source check` on its own."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bot.db import Database
from bot.sandbox import BotApiSandbox
from bot.settings import Settings
from tests import source_db
from tests.conftest import ON_POSTGRES
from tests.test_run import _cli, _env, _stop_bot, _wait, sandbox  # noqa: F401 (sandbox: the threaded fixture)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CUSTOMER, SHOPPER, WOO_SHOPPER = 42, 43, 44
SHOPIFY_SECRET, WOO_SECRET = "shpss_run_secret", "woo-run-secret"


def _start(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], Path]:
    """`stockbot run`, its output in a file the test reads while it runs."""
    log = cwd / "run.log"
    out = log.open("w")
    bot = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=cwd, stdout=out,
                           stderr=subprocess.STDOUT, text=True)
    out.close()
    return bot, log


def _stop(bot: subprocess.Popen[str], log: Path) -> str:
    _stop_bot(bot, signal.SIGTERM)
    return log.read_text()


def _link(env: dict[str, str], cwd: Path, box: BotApiSandbox, external_id: str, user: int) -> None:
    invite = _cli(env, cwd, "customers", "invite", "--token-only", "--external-id", external_id)
    assert invite.returncode == 0, invite.stderr
    box.send_text(user, f"/start {invite.stdout.split(chr(9))[1].strip()}")
    _wait(lambda: box.messages(user), what=f"the answer to {external_id}'s /start")


def _offer(box: BotApiSandbox, user: int):  # type: ignore[no-untyped-def]
    return _wait(lambda: [m for m in box.messages(user) if "out of stock" in m.plain_text], what="the stockout offer")


# --- the shop's own database ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not ON_POSTGRES, reason="a PostgreSQL source needs the PostgreSQL pass's server"))])
def test_run_polls_the_shops_database_and_a_stockout_there_reaches_the_customer(
    tmp_path: Path, sandbox: BotApiSandbox, database_url: str, db: Database, kind: str  # noqa: F811
) -> None:
    """(`db` empties the tables on PostgreSQL, where each test does not get a database of its own.)"""
    source = source_db.source_url(kind, tmp_path)
    asyncio.run(source_db.create_source(source, [("LIP-1", "SH", 10), ("LIP-2", "SH", 10), ("GHOST-9", "SH", 1)]))
    env = _env(tmp_path, sandbox, database_url, SOURCE_DATABASE_URL=source, SOURCE_STOCK_QUERY=source_db.QUERY,
               SOURCE_POLL_SECONDS="1", LOG_LEVEL="DEBUG")
    files = {
        "catalog": "sku,name,category,price,reorder_point\nLIP-1,Velvet Red,lips,10,3\nLIP-2,Velvet Ruby,lips,11,3\n",
        "customers": "external_id,name,tier\nC-1,Ann,vip\n",
        "orders": "external_id,customer_external_id,sku,qty,status\nO-1,C-1,LIP-1,2,open\n",
    }
    for name, text in files.items():
        (tmp_path / f"{name}.csv").write_text(text)
        assert _cli(env, tmp_path, "import", name, f"{name}.csv").returncode == 0
    bot, log = _start(env, tmp_path)
    try:
        _wait(lambda: "level(s) counted" in log.read_text(), what="the first poll")
        _wait(sandbox.is_polling, what="the bot to poll Telegram")
        _link(env, tmp_path, sandbox, "C-1", CUSTOMER)
        # The ERP sells the last LIP-1: the next poll makes it a stockout, and Ann's order is short.
        asyncio.run(source_db.set_rows(source, [("LIP-1", "SH", 0), ("LIP-2", "SH", 10), ("GHOST-9", "SH", 1)]))
        offer = _offer(sandbox, CUSTOMER)
        assert "Velvet Ruby" in offer[0].plain_text  # the in-stock substitute
        # The ERP's database goes away for a while: logged once, the bot keeps running, and it
        # picks up again when the table is back.
        asyncio.run(source_db.execute(source, "ALTER TABLE erp_stock RENAME TO erp_stock_moved"))
        _wait(lambda: log.read_text().count("the poll failed again") >= 2, what="polls failing")
        asyncio.run(source_db.execute(source, "ALTER TABLE erp_stock_moved RENAME TO erp_stock"))
        _wait(lambda: "the poll works again" in log.read_text(), what="the poll to recover")
        assert bot.poll() is None
    finally:
        output = _stop(bot, log)
    assert bot.returncode == 0, output[-3000:]
    assert output.count("the poll failed (") == 1
    assert sum("GHOST-9" in line for line in output.splitlines()) == 1  # the unknown SKU, logged once
    assert "Traceback" not in output
    assert asyncio.run(source_db.count_rows(source)) == 3  # read only: the source is as the ERP left it


def test_source_check_prints_what_a_poll_would_do_and_exits_0_or_1(tmp_path: Path, database_url: str, db: Database) -> None:
    source = source_db.source_url("sqlite", tmp_path)
    asyncio.run(source_db.create_source(source, [("LIP-1", "SH", 4), ("LIP-2", "SH", 0), ("GHOST-9", "SH", 1)]))
    env = {**_env_without_bot(database_url), "SOURCE_DATABASE_URL": source, "SOURCE_STOCK_QUERY": source_db.QUERY}
    (tmp_path / "catalog.csv").write_text("sku,name,category,price\nLIP-1,Velvet Red,lips,10\nLIP-2,Velvet Ruby,lips,11\n")
    assert _cli(env, tmp_path, "import", "catalog", "catalog.csv").returncode == 0
    checked = _cli(env, tmp_path, "source", "check")
    assert checked.returncode == 0, checked.stderr
    assert "rows read: 3" in checked.stdout
    assert "levels that differ from Stockbot's: 1" in checked.stdout  # LIP-2 at 0 is what Stockbot has
    assert "unknown SKUs: 1 (GHOST-9)" in checked.stdout
    assert _cli(env, tmp_path, "source", "check").stdout == checked.stdout  # it wrote nothing

    failing = _cli({**env, "SOURCE_STOCK_QUERY": "SELECT sku FROM no_such_table"}, tmp_path, "source", "check")
    assert failing.returncode == 1 and "no_such_table" in failing.stderr and "Traceback" not in failing.stderr
    unset = _cli({**env, "SOURCE_STOCK_QUERY": ""}, tmp_path, "source", "check")
    assert unset.returncode == 2 and "SOURCE_STOCK_QUERY" in unset.stderr
    driverless = _cli({**env, "SOURCE_DATABASE_URL": "mssql+aioodbc://shop:pw@erp/stock"}, tmp_path, "source", "check")
    assert driverless.returncode == 2 and "SOURCE_DATABASE_URL" in driverless.stderr and "pw" not in driverless.stderr


def _env_without_bot(database_url: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in Settings.model_fields}, "DATABASE_URL": database_url}


# --- Shopify and WooCommerce ---------------------------------------------------------------------


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _deliver(port: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _signed(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _shopify(port: str, topic: str, payload: Any, webhook_id: str, secret: str = SHOPIFY_SECRET) -> tuple[int, dict[str, Any]]:
    body = json.dumps(payload).encode()
    return _deliver(port, "/api/v1/shopify/webhook", body, {
        "Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Hmac-Sha256": _signed(secret, body), "X-Shopify-Shop-Domain": "example.myshopify.com"})


def _woo(port: str, topic: str, payload: Any, secret: str = WOO_SECRET) -> tuple[int, dict[str, Any]]:
    body = json.dumps(payload).encode()
    return _deliver(port, "/api/v1/woocommerce/webhook", body, {
        "Content-Type": "application/json", "X-WC-Webhook-Topic": topic, "X-WC-Webhook-Signature": _signed(secret, body)})


def _level(available: int) -> dict[str, Any]:
    return {**_fixture("shopify/inventory_levels_update.json"), "available": available}


def test_run_takes_shopify_and_woocommerce_deliveries_and_their_stockouts_reach_customers(
    tmp_path: Path, sandbox: BotApiSandbox, database_url: str, db: Database  # noqa: F811
) -> None:
    env = _env(tmp_path, sandbox, database_url, SHOPIFY_WEBHOOK_SECRET=SHOPIFY_SECRET,
               SHOPIFY_LOCATIONS="24826418=WH-NY", WOOCOMMERCE_WEBHOOK_SECRET=WOO_SECRET)
    port = env["API_PORT"]
    bot, log = _start(env, tmp_path)
    try:
        _wait(sandbox.is_polling, what="the bot to poll Telegram")
        assert _shopify(port, "products/create", _fixture("shopify/products_create.json"), "w-1")[0] == 200
        assert _shopify(port, "inventory_levels/update", _level(6), "w-2")[0] == 200
        assert _shopify(port, "orders/create", _fixture("shopify/orders_create.json"), "w-3")[0] == 200
        # A forger, a retried delivery and a topic Stockbot does not follow change nothing.
        assert _shopify(port, "inventory_levels/update", _level(0), "w-4", secret="guessed")[0] == 401
        assert _shopify(port, "inventory_levels/update", {**_level(0)}, "w-2")[1]["status"] == "duplicate"
        assert _shopify(port, "shop/update", {"id": 548380009}, "w-5")[1]["status"] == "ignored"
        _link(env, tmp_path, sandbox, "SHOPIFY-115310627314723954", SHOPPER)
        assert not [m for m in sandbox.messages(SHOPPER) if "out of stock" in m.plain_text]
        # Shopify sells the last Small: John's open order is short, and he hears of it.
        assert _shopify(port, "inventory_levels/update", _level(0), "w-6")[0] == 200
        assert "Example T-Shirt - Small" in _offer(sandbox, SHOPPER)[0].plain_text

        ping = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/woocommerce/webhook", data=b"webhook_id=12",
                                      method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(ping, timeout=10) as pong:
            assert pong.status == 200
        product = _fixture("woocommerce/product_created.json")
        assert _woo(port, "product.created", product)[0] == 200
        assert _woo(port, "order.created", _fixture("woocommerce/order_created.json"))[0] == 200
        assert _woo(port, "product.updated", {**product, "stock_quantity": 0}, secret="guessed")[0] == 401
        _link(env, tmp_path, sandbox, "WOO-25", WOO_SHOPPER)
        assert _woo(port, "product.updated", {**product, "stock_quantity": 0})[0] == 200
        assert "Premium Quality" in _offer(sandbox, WOO_SHOPPER)[0].plain_text
    finally:
        output = _stop(bot, log)
    assert bot.returncode == 0, output[-3000:]
    assert "shop/update" in output  # the unknown topic is logged
    assert "Traceback" not in output and SHOPIFY_SECRET not in output and WOO_SECRET not in output
