"""The signed-call examples in docs/usage.md work as printed (copied out and run)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.api.app import create_api_app
from bot.db import Database
from bot.models import Customer
from tests.factories import add_product
from tests.test_api import SECRET, _settings, on_hand

USAGE = Path(__file__).resolve().parents[1] / "docs" / "usage.md"


def _example(language: str) -> str:
    section = USAGE.read_text(encoding="utf-8").split("## Integration HTTP API", 1)[1]
    [code] = re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    return code


@pytest.fixture
async def served(db: Database, database_url: str):  # type: ignore[no-untyped-def]
    async with db.transaction() as session:
        await add_product(session, "LIP-1", stock={"main": 10})
    # Rotating keys: the examples sign with the first.
    app = create_api_app(_settings(database_url, WEBHOOK_SECRET=f"{SECRET}, an-old-key"), db)
    async with TestClient(TestServer(app)) as client:
        yield str(client.make_url("")).rstrip("/")


async def test_the_python_example_signs_calls_the_server_accepts(served: str, db: Database) -> None:
    code = _example("python")
    env = {"STOCKBOT_URL": served, "WEBHOOK_SECRET": f"{SECRET}, an-old-key"}
    out = io.StringIO()

    def run() -> None:
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, "usage.md", "exec"), {"__name__": "__main__"})
        finally:
            for name, value in saved.items():
                os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)

    await asyncio.to_thread(run)
    assert out.getvalue().splitlines() == ["{'applied': 1, 'duplicates': 0}", "{'created': 1, 'updated': 0}"]
    assert await on_hand(db, "LIP-1", "main") == 40
    async with db.read_session() as session:
        assert await session.scalar(select(Customer.name).where(Customer.external_id == "C-1")) == "Ann"


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("curl") and shutil.which("openssl")),
                    reason="the shell example needs bash, curl and openssl")
async def test_the_curl_example_signs_a_call_the_server_accepts(served: str, db: Database) -> None:
    env = {**os.environ, "STOCKBOT_URL": served, "WEBHOOK_SECRET": f"{SECRET},an-old-key"}
    done = await asyncio.to_thread(subprocess.run, ["bash", "-c", _example("sh")], env=env,
                                   capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '{"applied": 1, "duplicates": 0}'
    assert await on_hand(db, "LIP-1", "main") == 8
