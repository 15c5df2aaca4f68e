"""`stockbot run` meeting faults as an operator would see them: a real process against the sandbox."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.db import Database
from bot.delivery.outbox import Outgoing, enqueue_many
from bot.sandbox import BotApiSandbox
from tests.test_run import _env, _start_bot, _stop_bot, _wait

CHATS = range(9000, 9200)


@pytest.fixture
def sandbox() -> Iterator[BotApiSandbox]:
    """On its own thread, since the bot here is another process."""
    with BotApiSandbox() as running:
        yield running


def _delivered(sandbox: BotApiSandbox) -> list[int]:
    return [call.params["chat_id"] for call in sandbox.calls_to("sendMessage") if call.status == 200]


async def test_sigterm_mid_backlog_with_a_silent_bot_api_stops_cleanly_and_loses_nothing(
    tmp_path: Path, sandbox: BotApiSandbox, database_url: str, db: Database
) -> None:
    async with db.transaction() as session:
        await enqueue_many(session, [Outgoing(f"backlog:{chat}", chat, "notice", f"to {chat}") for chat in CHATS])
    env = _env(tmp_path, sandbox, database_url, SEND_RATE="20")
    bot = _start_bot(env, tmp_path)
    try:
        _wait(lambda: len(_delivered(sandbox)) >= 20, what="the backlog to be under way")
        sandbox.go_silent("sendMessage")  # the Bot API stops answering mid-backlog
        time.sleep(0.5)  # sends are now waiting for answers that do not come
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            # A bound on a hang, not a speed test: waiting for the silent sends would take aiogram's
            # request timeout (a minute), a long bookkeeping batch as long.
            output, _ = bot.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            bot.kill()
            output, _ = bot.communicate()
            pytest.fail(f"no exit 30 s after SIGTERM:\n{output[-3000:]}")
    assert bot.returncode == 0, output
    assert "Traceback" not in output

    sandbox.answer_again()
    again = _start_bot(env, tmp_path)
    try:
        _wait(lambda: len(set(_delivered(sandbox))) == len(CHATS), what="the rest of the backlog")
    finally:
        output = _stop_bot(again, signal.SIGTERM)
    assert again.returncode == 0, output
    assert sorted(_delivered(sandbox)) == list(CHATS)  # every message once: none lost, none twice
