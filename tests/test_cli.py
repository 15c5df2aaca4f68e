"""The command line as an operator meets it: exit codes and what is printed."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def stockbot(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=environment,
        capture_output=True, text=True, timeout=600,  # a hang guard: the demo took 39 s at load 8
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("SEND_RATE", "fast"), ("ADMIN_IDS", "12,bob"), ("TIMEZONE", "Mars/Olympus"),
     ("QUIET_HOURS", "late"), ("DATABASE_URL", "mysql://x"), ("DEFAULT_LOCALE", "fr"),
     ("DATABASE_URL", "postgresql+asyncpg://shop@db:five/shop"), ("WEBHOOK_PATH", "hook"),
     ("WEBHOOK_PATH", "/api/v1/telegram")],
)
def test_a_bad_setting_exits_2_with_one_line_naming_it(tmp_path: Path, name: str, value: str) -> None:
    result = stockbot("db", "upgrade", cwd=tmp_path, **{name: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "Traceback" not in result.stderr


def test_run_without_a_token_names_bot_token(tmp_path: Path) -> None:
    result = stockbot("run", cwd=tmp_path)
    assert result.returncode == 2 and "BOT_TOKEN" in result.stderr


def test_webhook_mode_without_a_public_url_names_webhook_url(tmp_path: Path) -> None:
    result = stockbot("run", "--webhook", cwd=tmp_path, BOT_TOKEN="123:abc")
    assert result.returncode == 2 and "WEBHOOK_URL" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_token_is_never_echoed(tmp_path: Path) -> None:
    result = stockbot("db", "upgrade", cwd=tmp_path, BOT_TOKEN="secret-token-value")
    assert result.returncode == 2 and "secret-token-value" not in result.stderr


def test_env_file_in_the_working_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SEND_RATE=-1\n")
    assert stockbot("db", "upgrade", cwd=tmp_path).returncode == 2


def test_an_env_file_that_is_not_utf8_names_env(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes("# 店铺设置\nSEND_RATE=25\n".encode("gbk"))  # as Notepad saves it on Chinese Windows
    result = stockbot("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ".env" in lines[0] and "UTF-8" in lines[0] and "Traceback" not in result.stderr


def test_env_example_lists_every_setting() -> None:
    listed = set(re.findall(r"^#?\s*([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert listed == set(Settings.model_fields)


def test_import_bad_file_prints_file_line_reason_and_exits_1(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    (tmp_path / "catalog.csv").write_text("sku,name,category,price\nA,Alpha,lips,1\nB,Beta,lips,-1\n")
    result = stockbot("import", "catalog", "catalog.csv", cwd=tmp_path, DATABASE_URL=db_url)
    assert result.returncode == 1
    assert "catalog.csv:3: price -1 is negative" in result.stderr.splitlines()
    (tmp_path / "catalog.csv").write_text("sku,name,category,price\nA,Alpha,lips,1\n")
    dry = stockbot("import", "catalog", "catalog.csv", "--dry-run", cwd=tmp_path, DATABASE_URL=db_url)
    assert dry.returncode == 0 and "nothing written" in dry.stdout
    real = stockbot("import", "catalog", "catalog.csv", cwd=tmp_path, DATABASE_URL=db_url)
    assert real.returncode == 0 and "1 created" in real.stdout


def test_import_messages_name_the_file_as_given(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    (tmp_path / "catalog.csv").write_text("sku,name,category,price\nB,Beta,lips,-1\n")
    bad = stockbot("import", "catalog", "./catalog.csv", cwd=tmp_path, DATABASE_URL=db_url)
    assert "./catalog.csv:2: price -1 is negative" in bad.stderr.splitlines()
    missing = stockbot("import", "catalog", "./no-such.csv", cwd=tmp_path, DATABASE_URL=db_url)
    assert missing.returncode == 1 and missing.stderr.startswith("./no-such.csv: cannot read")


def test_invite_token_only_prints_one_line_per_unlinked_customer(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    (tmp_path / "c.csv").write_text("external_id,name,tier\nC1,Ann,vip\nC2,Bob,regular\n")
    assert stockbot("import", "customers", "c.csv", cwd=tmp_path, DATABASE_URL=db_url).returncode == 0
    result = stockbot("customers", "invite", "--token-only", cwd=tmp_path, DATABASE_URL=db_url)
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[0] for row in rows] == ["C1", "C2"]
    assert all(len(row[1]) >= 20 for row in rows) and rows[0][1] != rows[1][1]
    missing = stockbot("customers", "invite", "--token-only", "--external-id", "C9", cwd=tmp_path, DATABASE_URL=db_url)
    assert missing.returncode == 1


def test_db_upgrade_from_empty(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    first = stockbot("db", "upgrade", cwd=tmp_path, DATABASE_URL=db_url)
    again = stockbot("db", "upgrade", cwd=tmp_path, DATABASE_URL=db_url)
    assert first.returncode == again.returncode == 0


def test_demo_tells_the_whole_story_offline_and_exits_0(tmp_path: Path) -> None:
    result = stockbot("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for person in ("Alice (admin)", "Peter (purchaser)", "Rita (sales rep)", "Ann Lee (VIP", "李娜", "Max Müller"):
        assert f"━━ {person}" in out
    assert "Reorder: Velvet Matte Lipstick Red" in out and out.count("24 × LIP-RED on the way") == 1
    assert "is out of stock" in out and "15% off" in out and "reserved for you" in out
    assert "back in stock" in out and "Revenue kept" in out
    assert "已绑定" in out and "唇釉 正红色" in out and "等待补货" in out and "已到货" in out
    assert not list(tmp_path.iterdir())  # nothing left behind
    # The funnel comes after the story that fills it.
    assert out.index("Revenue kept") > out.index("━━ Max Müller")


def test_demo_in_chinese_presses_the_chinese_buttons(tmp_path: Path) -> None:
    result = stockbot("demo", "--locale", "zh", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "[button: ✅ 已下单]" in out
    assert out.count("已记录：24 × LIP-RED 在途") == 1  # one confirmation of the purchaser's order


def test_commands_that_never_talk_to_telegram_start_without_aiogram() -> None:
    """aiogram builds its models at import (seconds on this machine): `db upgrade`, `import` and
    the checks before `run` must not pay for it."""
    probe = (
        "import sys, bot.cli, bot.startup, bot.serve, bot.migrate, bot.ingest.importer;"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'aiogram'))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
