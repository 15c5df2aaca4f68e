"""`stockbot run` as an operator runs it: a real process against the sandbox, stopped by signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox import BotApiSandbox
from bot.settings import Settings
from tests.conftest import ON_POSTGRES
from tests.factories import ADMIN

CUSTOMER = 42


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def sandbox() -> Iterator[BotApiSandbox]:
    """Overrides conftest's: on its own thread, since the bot here is another process."""
    with BotApiSandbox() as running:
        yield running


def _env(tmp_path: Path, sandbox: BotApiSandbox, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update(
        BOT_TOKEN=sandbox.token, TELEGRAM_API_URL=sandbox.base_url, DATABASE_URL=database_url,
        ADMIN_IDS=str(ADMIN), API_PORT=str(_free_port()), QUIET_HOURS="", WEBHOOK_SECRET="s3cret",
        **extra,
    )
    return env


def _wait(predicate, timeout: float = 90.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def _start_bot(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bot", "run", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop_bot(bot: subprocess.Popen[str], sig: signal.Signals) -> str:
    """Stop as an operator would; the output, once the process is gone (killed if it hangs)."""
    try:
        bot.send_signal(sig)
        output, _ = bot.communicate(timeout=90)
    finally:
        if bot.poll() is None:
            bot.kill()
    return output


def test_run_answers_acts_on_cli_changes_and_stops_cleanly_on_sigterm(
    tmp_path: Path, sandbox: BotApiSandbox, database_url: str
) -> None:
    env = _env(tmp_path, sandbox, database_url)
    files = {
        "catalog": "sku,name,category,price,reorder_point\nLIP-1,Velvet Red,lips,10,3\nLIP-2,Velvet Ruby,lips,11,3\n",
        "stock": "sku,warehouse,on_hand\nLIP-1,SH,10\nLIP-2,SH,10\n",
        "customers": "external_id,name,tier\nC-1,Ann,vip\nC-2,Bob,regular\n",
        "orders": "external_id,customer_external_id,sku,qty,status\nO-1,C-1,LIP-1,2,open\n",
    }
    for kind, text in files.items():
        (tmp_path / f"{kind}.csv").write_text(text)
        assert _cli(env, tmp_path, "import", kind, f"{kind}.csv").returncode == 0
    token = _cli(env, tmp_path, "customers", "invite", "--token-only", "--external-id", "C-1").stdout.split("\t")[1].strip()
    bot = _start_bot(env, tmp_path)
    try:
        _wait(sandbox.is_polling, what="the bot to poll")
        sandbox.send_text(ADMIN, "/help")
        sandbox.send_text(CUSTOMER, f"/start {token}")
        _wait(lambda: sandbox.messages(ADMIN) and sandbox.messages(CUSTOMER), what="answers to /help and /start")
        assert "/grant" in sandbox.messages(ADMIN)[0].plain_text
        # Another process empties the product while the bot runs: the bot notices, prompts the
        # purchasing side and contacts the customer whose order is now short.
        (tmp_path / "stock.csv").write_text("sku,warehouse,on_hand\nLIP-1,SH,0\n")
        assert _cli(env, tmp_path, "import", "stock", "stock.csv").returncode == 0
        prompt = _wait(lambda: [m for m in sandbox.messages(ADMIN) if "LIP-1" in m.plain_text],
                       what="the reorder prompt")
        assert "Available: 0" in prompt[0].plain_text
        offer = _wait(lambda: [m for m in sandbox.messages(CUSTOMER) if "out of stock" in m.plain_text],
                      what="the stockout offer")
        assert "Velvet Ruby" in offer[0].plain_text and offer[0].buttons()
    finally:
        output = _stop_bot(bot, signal.SIGTERM)
    assert bot.returncode == 0, output
    assert "Traceback" not in output and sandbox.token.split(":")[1] not in output
    # The username the bot learned at start makes invite links with Telegram out of reach.
    offline = {**env, "TELEGRAM_API_URL": f"http://127.0.0.1:{_free_port()}"}
    invite = _cli(offline, tmp_path, "customers", "invite", "--external-id", "C-2")
    assert invite.returncode == 0, invite.stderr
    assert invite.stdout.startswith(f"C-2\thttps://t.me/{sandbox.bot_username}?start=")


def _update(update_id: int, user_id: int, text: str) -> dict[str, object]:
    command = text.split()[0]
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 0, "text": text, "chat": {"id": user_id, "type": "private"},
        "from": {"id": user_id, "is_bot": False, "first_name": "U"},
        "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}]}}


def _post(url: str, update: dict[str, object], secret: str | None) -> int:
    """POST an update as Telegram would (or a forger); the HTTP status, 0 while nothing listens."""
    import json
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, data=json.dumps(update).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@pytest.mark.skipif(ON_POSTGRES, reason="one SQLite file is enough to show the webhook wiring")
def test_webhook_mode_takes_updates_on_the_api_port_and_checks_the_secret(
    tmp_path: Path, sandbox: BotApiSandbox, database_url: str
) -> None:
    env = _env(tmp_path, sandbox, database_url, WEBHOOK_URL="https://shop.example", TELEGRAM_SECRET_TOKEN="tg-secret")
    bot = _start_bot(env, tmp_path, "--webhook")
    url = f"http://127.0.0.1:{env['API_PORT']}/telegram/webhook"
    try:
        _wait(lambda: sandbox.webhook_url, what="setWebhook")
        assert sandbox.webhook_url == "https://shop.example/telegram/webhook"
        assert sandbox.webhook_secret == "tg-secret"
        assert _wait(lambda: _post(url, _update(1, ADMIN, "/help"), "wrong") or None, what="the webhook route") == 403
        assert _post(url, _update(2, ADMIN, "/help"), "tg-secret") == 200
        _wait(lambda: sandbox.messages(ADMIN), what="an answer to the webhook update")
    finally:
        output = _stop_bot(bot, signal.SIGINT)
    assert bot.returncode == 0, output


@pytest.mark.skipif(ON_POSTGRES, reason="one SQLite file is enough to show the webhook wiring")
def test_webhook_without_a_configured_secret_refuses_forged_updates(
    tmp_path: Path, sandbox: BotApiSandbox, database_url: str
) -> None:
    """No TELEGRAM_SECRET_TOKEN set: a made-up one guards the path, so a forged /grant grants nothing."""
    env = _env(tmp_path, sandbox, database_url, WEBHOOK_URL="https://shop.example")
    bot = _start_bot(env, tmp_path, "--webhook")
    url = f"http://127.0.0.1:{env['API_PORT']}/telegram/webhook"
    forger = 666
    try:
        _wait(lambda: sandbox.webhook_secret, what="setWebhook with a secret token")
        secret = sandbox.webhook_secret
        assert 16 <= len(secret) <= 256 and all(c.isascii() and (c.isalnum() or c in "_-") for c in secret)
        forged = _update(1, ADMIN, f"/grant {forger} admin")
        assert _wait(lambda: _post(url, forged, None) or None, what="the webhook route") == 403
        assert _post(url, forged, "guessed") == 403
        # Telegram, which holds the registered secret, gets through; the forger got nothing.
        assert _post(url, _update(2, forger, "/help"), secret) == 200
        answer = _wait(lambda: sandbox.messages(forger), what="an answer to the real update")
        assert "/grant" not in answer[0].plain_text
        assert not sandbox.messages(ADMIN)
    finally:
        output = _stop_bot(bot, signal.SIGTERM)
    assert bot.returncode == 0, output
    assert secret not in output


def test_invite_prints_deep_links_with_the_bots_username(
    tmp_path: Path, sandbox: BotApiSandbox, database_url: str
) -> None:
    env = _env(tmp_path, sandbox, database_url)
    (tmp_path / "customers.csv").write_text("external_id,name,tier\nC-1,Ann,vip\nC-2,Bob,regular\n")
    assert _cli(env, tmp_path, "import", "customers", "customers.csv").returncode == 0
    result = _cli(env, tmp_path, "customers", "invite", "--external-id", "C-2")
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    external_id, link = line.split("\t")
    assert external_id == "C-2"
    assert link.startswith(f"https://t.me/{sandbox.bot_username}?start=") and len(link.split("=", 1)[1]) >= 20


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_while_starting_is_a_clean_exit(tmp_path: Path, database_url: str, sig: signal.Signals) -> None:
    """getMe can take START_CHECK_TIMEOUT against a silent server: the bot is stopped inside it."""
    with socket.socket() as silent_api:
        silent_api.bind(("127.0.0.1", 0))
        silent_api.listen()
        silent_api.settimeout(90)
        env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
        env.update(BOT_TOKEN="123456:some-secret-token", DATABASE_URL=database_url, API_PORT=str(_free_port()),
                   TELEGRAM_API_URL=f"http://127.0.0.1:{silent_api.getsockname()[1]}")
        bot = _start_bot(env, tmp_path)
        try:
            connection, _ = silent_api.accept()  # the bot is asking getMe, and gets no answer
        finally:
            output = _stop_bot(bot, sig)
        connection.close()
    assert bot.returncode == 0, output
    assert "Traceback" not in output and "Unclosed" not in output


def test_webhook_processes_without_a_configured_secret_all_accept_telegrams_updates(
    tmp_path: Path, sandbox: BotApiSandbox, database_url: str
) -> None:
    """Each process registers its made-up secret with setWebhook and only the last one counts:
    every process must make up the same one, or the others refuse Telegram's updates."""
    first_env = _env(tmp_path, sandbox, database_url, WEBHOOK_URL="https://shop.example")
    second_env = {**first_env, "API_PORT": str(_free_port())}
    first = _start_bot(first_env, tmp_path, "--webhook")
    second = None
    try:
        _wait(lambda: sandbox.calls_to("setWebhook"), what="the first process's setWebhook")
        second = _start_bot(second_env, tmp_path, "--webhook")
        _wait(lambda: len(sandbox.calls_to("setWebhook")) == 2, what="the second process's setWebhook")
        registered = sandbox.webhook_secret  # the second process's, as Telegram now holds it
        url = f"http://127.0.0.1:{first_env['API_PORT']}/telegram/webhook"
        assert _post(url, _update(1, ADMIN, "/help"), registered) == 200
        _wait(lambda: sandbox.messages(ADMIN), what="the first process's answer")
    finally:
        outputs = [_stop_bot(bot, signal.SIGTERM) for bot in (first, second) if bot is not None]
    assert first.returncode == 0 and second is not None and second.returncode == 0, outputs
    assert sandbox.token.split(":")[1] not in registered
