"""Settings that only fail against the world: one line naming the setting, exit 2, no traceback."""

from __future__ import annotations

import argparse
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import build_parser
from bot.ingest.importer import COLUMNS
from bot.sandbox import BotApiSandbox
from tests.test_cli import ROOT, stockbot
from tests.test_run import _free_port, sandbox  # noqa: F401 (sandbox: the thread-run fixture)


def _one_line_naming(result, name: str, *hidden: str) -> None:  # type: ignore[no-untyped-def]
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and name in lines[0], output
    assert "Traceback" not in output
    for secret in hidden:
        assert secret not in output


def test_a_token_the_bot_api_refuses_names_bot_token(tmp_path: Path, sandbox: BotApiSandbox) -> None:
    wrong = "123456:WRONG-secret-part-of-the-token"
    db = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    for command in (("run",), ("customers", "invite")):
        result = stockbot(*command, cwd=tmp_path, BOT_TOKEN=wrong, TELEGRAM_API_URL=sandbox.base_url,
                          DATABASE_URL=db, API_PORT=str(_free_port()))
        _one_line_naming(result, "BOT_TOKEN", "WRONG-secret-part-of-the-token")


def test_a_bot_api_server_that_cannot_be_reached_names_telegram_api_url(tmp_path: Path) -> None:
    result = stockbot("run", cwd=tmp_path, BOT_TOKEN="123456:some-secret-token",
                      TELEGRAM_API_URL=f"http://127.0.0.1:{_free_port()}",
                      DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}", API_PORT=str(_free_port()))
    _one_line_naming(result, "TELEGRAM_API_URL", "some-secret-token")


@pytest.mark.parametrize("command", [("db", "upgrade"), ("run",), ("customers", "invite", "--token-only")])
def test_a_sqlite_database_in_a_missing_folder_names_database_url(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = stockbot(*command, cwd=tmp_path, BOT_TOKEN="123456:some-secret-token",
                      DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'no-such-folder' / 'shop.db'}")
    _one_line_naming(result, "DATABASE_URL", "some-secret-token")


def test_a_postgresql_server_that_is_down_names_database_url(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://shop:pg-password-123@127.0.0.1:{_free_port()}/shop"
    result = stockbot("db", "upgrade", cwd=tmp_path, DATABASE_URL=url)
    _one_line_naming(result, "DATABASE_URL", "pg-password-123")


@pytest.mark.parametrize("command", [("db", "upgrade"), ("run",)])
def test_a_database_url_option_the_driver_refuses_names_database_url(tmp_path: Path, command: tuple[str, ...]) -> None:
    url = f"postgresql+asyncpg://shop:pg-password-123@127.0.0.1:{_free_port()}/shop?no_such_option=1"
    result = stockbot(*command, cwd=tmp_path, BOT_TOKEN="123456:some-secret-token", DATABASE_URL=url)
    _one_line_naming(result, "DATABASE_URL", "pg-password-123", "some-secret-token")


def _run_against(sandbox: BotApiSandbox, tmp_path: Path, *args: str, **env: str):  # type: ignore[no-untyped-def]
    """`stockbot run` failing after getMe: WARNING keeps start-up's INFO lines out, not a warning
    such as an unclosed session."""
    return stockbot("run", *args, cwd=tmp_path, BOT_TOKEN=sandbox.token, TELEGRAM_API_URL=sandbox.base_url,
                    DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}", LOG_LEVEL="WARNING", **env)


def test_an_api_port_in_use_names_api_port(tmp_path: Path, sandbox: BotApiSandbox) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = _run_against(sandbox, tmp_path, API_PORT=str(taken.getsockname()[1]))
    _one_line_naming(result, "API_PORT", sandbox.token)
    assert "Unclosed" not in result.stderr and not sandbox.calls_to("getUpdates")  # nothing started


def test_an_api_host_that_does_not_resolve_names_api_host(tmp_path: Path, sandbox: BotApiSandbox) -> None:
    result = _run_against(sandbox, tmp_path, API_HOST="no-such-host.invalid", API_PORT=str(_free_port()))
    _one_line_naming(result, "API_HOST", sandbox.token)


def test_a_webhook_url_telegram_refuses_names_webhook_url(tmp_path: Path, sandbox: BotApiSandbox) -> None:
    result = _run_against(sandbox, tmp_path, "--webhook", WEBHOOK_URL="http://shop.example", API_PORT=str(_free_port()))
    _one_line_naming(result, "WEBHOOK_URL", sandbox.token)
    assert "HTTPS" in result.stderr


def test_a_fresh_copy_of_env_example_works_empty_means_unset(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    (tmp_path / "catalog.csv").write_text("sku,name,category,price\nA,Alpha,lips,1\n")
    result = stockbot("import", "catalog", "catalog.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "stockbot.db").exists()


def test_version_is_printed(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = stockbot("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"stockbot {version('stockbot')}"


def test_every_command_and_option_has_help() -> None:
    def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    yield f"{path} {choice.dest}", choice
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction):
                yield f"{path} {action.dest}", action

    missing = [where for where, action in walk(build_parser(), "stockbot") if not action.help]
    assert missing == []


def test_the_cli_offers_exactly_the_importers_kinds() -> None:
    from bot.cli import IMPORT_KINDS
    from bot.ingest.importer import KINDS

    assert IMPORT_KINDS == KINDS


def test_import_help_lists_each_kinds_columns(tmp_path: Path) -> None:
    result = stockbot("import", "--help", cwd=tmp_path)
    assert result.returncode == 0
    for kind, (required, optional) in COLUMNS.items():
        assert f"{kind}: {','.join(required)}" in result.stdout
        for column in optional:
            assert column in result.stdout


def test_invite_without_a_username_or_token_names_the_invite_command(tmp_path: Path) -> None:
    result = stockbot("customers", "invite", cwd=tmp_path)
    _one_line_naming(result, "BOT_USERNAME")
    assert "customers invite" in result.stderr and "--token-only" in result.stderr
