"""`stockbot doctor`, `stockbot report` and `stockbot plan` as an operator runs them."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from bot.db import Database
from bot.jobs import daily_forecast
from bot.reports.charts import find_font
from bot.sandbox import BotApiSandbox
from bot.services import build_services
from bot.settings import Settings
from tests.factories import add_product
from tests.planning_data import add_history
from tests.test_cli import stockbot
from tests.test_run import _free_port


def test_doctor_marks_each_check_and_exits_1_until_all_hold(tmp_path: Path) -> None:
    font_ok = find_font().cjk
    fresh = stockbot("doctor", "--timeout", "2", cwd=tmp_path, TELEGRAM_API_URL=f"http://127.0.0.1:{_free_port()}")
    assert fresh.returncode == 1
    lines = fresh.stdout.splitlines()
    assert lines[0] == "✓ settings: read from the environment"
    assert lines[1].startswith(f"✗ database: SQLite {tmp_path / 'stockbot.db'} does not exist yet; `stockbot db upgrade`")
    assert not (tmp_path / "stockbot.db").exists()  # the doctor changes nothing
    assert "✗ Bot API: BOT_TOKEN is not set" in fresh.stdout and "✗ admins: no admins" in fresh.stdout
    assert ("✓ CJK font" if font_ok else "✗ CJK font: no CJK font") in fresh.stdout
    assert all(line[:2] in ("✓ ", "✗ ") for line in lines)
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    offline = stockbot("doctor", "--timeout", "2", cwd=tmp_path, DATABASE_URL=url, BOT_TOKEN="123:abc",
                       TELEGRAM_API_URL=f"http://127.0.0.1:{_free_port()}", ADMIN_IDS="7")
    assert f"✗ database: SQLite {tmp_path / 'shop.db'} does not exist yet" in offline.stdout
    assert "✗ Bot API: cannot reach" in offline.stdout and "✓ admins: 1 in ADMIN_IDS" in offline.stdout
    assert stockbot("db", "upgrade", cwd=tmp_path, DATABASE_URL=url).returncode == 0
    with BotApiSandbox() as sandbox:
        ready = stockbot("doctor", cwd=tmp_path, DATABASE_URL=url, BOT_TOKEN=sandbox.token,
                         TELEGRAM_API_URL=sandbox.base_url, ADMIN_IDS="7", WEBHOOK_URL="http://shop.example")
    assert f"✓ database: SQLite {tmp_path / 'shop.db'}, reachable and migrated" in ready.stdout
    assert f"✓ Bot API: token works: @{sandbox.bot_username}" in ready.stdout
    assert "✗ webhook: WEBHOOK_URL http://shop.example must start with https://" in ready.stdout
    assert ready.returncode == 1 and sandbox.token.split(":")[1] not in ready.stdout
    bad = stockbot("doctor", cwd=tmp_path, SEND_RATE="fast")
    assert bad.returncode == 1 and bad.stdout.startswith("✗ settings: setting SEND_RATE")


async def _shop(db: Database, settings: Settings) -> None:
    async with db.transaction() as session:
        product = await add_product(session, "BUY", name="=HYPERLINK(1)", reorder_point=5, lead_time_days=14,
                                    supplier="@Rosa", stock={"SH": 3})
        await add_history(session, product.id, "SH", [(4, 30)] * 60)
    await daily_forecast(build_services(settings, db))


async def test_plan_prints_the_plan_and_csv_safe_for_a_spreadsheet(
    db: Database, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    empty = stockbot("plan", cwd=tmp_path, DATABASE_URL=database_url)
    assert empty.returncode == 0 and "no forecast yet" in empty.stderr
    await _shop(db, settings)
    text = stockbot("plan", cwd=tmp_path, DATABASE_URL=database_url)
    assert text.returncode == 0 and text.stdout.startswith("buy ") and " BUY for SH from @Rosa" in text.stdout
    as_csv = stockbot("plan", "--csv", cwd=tmp_path, DATABASE_URL=database_url)
    [row] = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert (row["sku"], row["warehouse"], row["action"], row["supplier"]) == ("BUY", "SH", "buy", "'@Rosa")
    assert int(row["qty"]) >= 4 * 14 - 3 and float(row["daily_demand"]) > 3


async def test_report_writes_the_charts_and_the_csv_to_a_folder(
    db: Database, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    await _shop(db, settings)
    result = stockbot("report", "30", "--out", "out/r", cwd=tmp_path, DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    written = [Path(line) for line in result.stdout.splitlines()]
    assert all(path.parent == Path("out/r") and (tmp_path / path).stat().st_size > 0 for path in written)
    pngs = [p for p in written if p.suffix == ".png"]
    [table] = [p for p in written if p.suffix == ".csv"]
    assert len(pngs) >= 3 and all((tmp_path / p).read_bytes().startswith(b"\x89PNG") for p in pngs)
    content = (tmp_path / table).read_text(encoding="utf-8-sig")
    assert content.startswith("sku,warehouse,abc,daily_demand,days_of_cover,turnover,stockout_days")
    assert "BUY,SH," in content
    bad = stockbot("report", "0", "--out", "x", cwd=tmp_path, DATABASE_URL=database_url)
    assert bad.returncode == 2 and "DAYS" in bad.stderr


def test_run_warns_at_start_of_each_problem_it_sees_offline(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from bot import doctor

    monkeypatch.setattr(doctor, "FONT_DIRS", (str(tmp_path),))
    bare = Settings(_env_file=None, DATABASE_URL="sqlite+aiosqlite:///x.db")  # type: ignore[call-arg]
    assert [w.split(":")[0] for w in doctor.start_warnings(bare)] == ["no admins", "no CJK font"]
    (tmp_path / "NotoSansCJK-Regular.ttc").write_bytes(b"")
    ready = Settings(_env_file=None, ADMIN_IDS="5")  # type: ignore[call-arg]
    assert doctor.start_warnings(ready) == []
