"""The `stockbot` command (also `python -m bot`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.settings import Settings, SettingsError, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stockbot", description="Keep a shop's customers when stock runs out.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the whole story offline and print every conversation")
    demo.add_argument("--locale", choices=("en", "zh", "both"), default="both")

    run = commands.add_parser("run", help="run the bot, HTTP API, scheduler and sender")
    run.add_argument("--webhook", action="store_true", help="take updates by webhook instead of long polling")

    importer = commands.add_parser("import", help="import a CSV file")
    importer.add_argument("kind", choices=("catalog", "stock", "customers", "orders", "history"))
    importer.add_argument("file", type=Path)
    importer.add_argument("--dry-run", action="store_true", help="check the file, write nothing")

    customers = commands.add_parser("customers", help="customer tools")
    customer_commands = customers.add_subparsers(dest="customers_command", required=True, metavar="ACTION")
    invite = customer_commands.add_parser("invite", help="print one-time deep links for unlinked customers")
    invite.add_argument("--external-id", help="only this customer")
    invite.add_argument("--token-only", action="store_true", help="print tokens instead of links")

    database = commands.add_parser("db", help="database tools")
    db_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="apply migrations")
    return parser


async def _db_upgrade(settings: Settings, _: argparse.Namespace) -> int:
    from bot.db import create_database
    from bot.migrate import upgrade

    db = create_database(settings)
    try:
        await upgrade(db)
    finally:
        await db.dispose()
    print("database is up to date")
    return 0


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    from bot.db import create_database
    from bot.inventory.importer import import_csv
    from bot.migrate import upgrade

    label = str(args.file)
    try:
        data = args.file.open("rb")  # streamed: the importer reads it twice, a chunk at a time
    except OSError as exc:
        print(f"{label}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1
    db = create_database(settings)
    try:
        await upgrade(db)
        report = await import_csv(
            db, args.kind, data, label=label, dry_run=args.dry_run,
            actor="cli:import", phone_region=settings.PHONE_REGION, zone=settings.zone,
        )
    finally:
        data.close()
        await db.dispose()
    for line in report.error_lines():
        print(line, file=sys.stderr)
    if not report.ok:
        print(f"{label}: {len(report.problems)} bad row(s); nothing was imported", file=sys.stderr)
        return 1
    if report.dry_run:
        print(f"{label}: {report.rows} row(s) checked, all good (dry run: nothing written)")
    else:
        print(f"{label}: imported {report.rows} row(s) of {report.kind}: "
              f"{report.created} created, {report.updated} updated")
    return 0


async def _invite(settings: Settings, args: argparse.Namespace) -> int:
    from bot.db import create_database
    from bot.migrate import upgrade
    from bot.shop.customers import issue_invites

    username = None if args.token_only else await _bot_username(settings)
    db = create_database(settings)
    try:
        await upgrade(db)
        async with db.transaction() as session:
            issued = await issue_invites(session, args.external_id)
    finally:
        await db.dispose()
    if args.external_id and not issued:
        print(f"no unlinked customer with external id {args.external_id!r}", file=sys.stderr)
        return 1
    for external_id, token in issued:
        target = token if username is None else f"https://t.me/{username}?start={token}"
        print(f"{external_id}\t{target}")
    return 0


async def _bot_username(settings: Settings) -> str:
    from bot.app import create_bot

    bot = create_bot(settings)
    try:
        me = await bot.get_me()
    finally:
        await bot.session.close()
    return me.username or ""


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import run_forever

    return await run_forever(settings, webhook=args.webhook)


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return await run_demo(locales=("en", "zh") if args.locale == "both" else (args.locale,))


def _handler(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    if args.command == "customers":
        return _invite
    if args.command == "db":
        return _db_upgrade
    return {"demo": _demo, "run": _run, "import": _import}[args.command]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "run" or (args.command == "customers" and not args.token_only):
            settings.require_token()
        if args.command == "run" and args.webhook and not settings.WEBHOOK_URL:
            raise SettingsError("WEBHOOK_URL", "is required by `stockbot run --webhook`")
        return asyncio.run(_handler(args)(settings, args))
    except SettingsError as exc:
        print(f"stockbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
