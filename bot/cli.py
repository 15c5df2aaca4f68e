"""The `stockbot` command (also `python -m bot`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from importlib import metadata

from bot import cli_failed
from bot.settings import Settings, SettingsError, load_settings


def version() -> str:
    try:
        return metadata.version("stockbot")
    except metadata.PackageNotFoundError:  # a checkout on PYTHONPATH, never installed
        return "unknown (not installed)"


def _columns_help() -> str:
    # The importer's parsers own the columns; the help reads them so the two never disagree. Deferred (CLI
    # start path): only `import --help` pays for loading the importer.
    from bot.ingest.parsers import COLUMNS

    lines = ["columns (first row of the file is the header):"]
    for kind, (required, optional) in COLUMNS.items():
        line = f"  {kind}: {','.join(required)}"
        if optional:
            line += f"  optional: {','.join(optional)}"
        lines.append(line)
    return "\n".join(lines)


# The importer's kinds, here so that the CLI starts without importing the importer (seconds:
# it pulls in the catalog and search indexes); a test keeps the two in step.
IMPORT_KINDS = ("catalog", "stock", "customers", "orders", "history")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose epilog may be worked out only when help is shown."""

    lazy_epilog = None

    def format_help(self) -> str:
        if self.lazy_epilog is not None:
            self.epilog = self.lazy_epilog()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="stockbot", description="Keep a shop's customers when stock runs out.",
        epilog="Settings come from the environment or .env in the working folder (see .env.example).",
    )
    parser.add_argument("--version", action="version", version=f"stockbot {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser("demo", help="run the whole story offline and print every conversation",
                               description="Run the whole story offline: a temporary SQLite database, the "
                                           "built-in Bot API sandbox, a seeded catalog. Needs no settings.")
    demo.add_argument("--locale", choices=("en", "zh", "both"), default="en",
                      help="the language the staff speak and the shop's default: en, zh, or both (the story "
                           "twice); customers keep their own, English or Chinese (default: en)")

    play = commands.add_parser("play", help="chat with the real bot in a browser, on a seeded demo shop",
                               description="Run the real bot against the built-in Bot API sandbox and serve "
                                           "a page on 127.0.0.1 where you chat as admin, purchaser, sales "
                                           "rep or a customer, and send stock events. Needs no settings.")
    play.add_argument("--port", type=int, default=8090, help="the page's port on 127.0.0.1 (default: 8090)")
    play.add_argument("--locale", choices=("en", "zh"), default=None,
                      help="the staff's language and the shop's default (default: en, or DEFAULT_LOCALE "
                           "with --database-url); customers keep their own")
    play.add_argument("--database-url", metavar="URL",
                      help="play on this database (try a copy: the page changes it) instead of a seeded demo shop")

    run = commands.add_parser("run", help="run the bot, HTTP API, scheduler and sender",
                              description="Run the bot, the integration HTTP API, the scheduler and the "
                                          "delivery worker in one process until SIGINT or SIGTERM. "
                                          "Needs BOT_TOKEN.")
    run.add_argument("--webhook", action="store_true",
                     help="take updates by webhook on API_HOST:API_PORT at WEBHOOK_PATH instead of long "
                          "polling (needs WEBHOOK_URL)")

    importer = commands.add_parser(
        "import", help="import a CSV or xlsx file", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check the whole file, then import it; with any bad row nothing is written and "
                    "each bad row is printed as FILE:LINE: reason (exit 1). The last line names the "
                    "database written to.",
    )
    importer.lazy_epilog = _columns_help
    importer.add_argument("kind", choices=IMPORT_KINDS, help="what the file holds: " + ", ".join(IMPORT_KINDS))
    # A string, not a Path: messages name the file as given (Path drops a leading ./).
    importer.add_argument("file", help="the CSV or xlsx file, with a header row")
    importer.add_argument("--dry-run", action="store_true", help="check the file, write nothing")
    importer.add_argument("--sheet", metavar="NAME", help="the xlsx sheet to read (default: the first)")
    importer.add_argument("--all-errors", action="store_true",
                          help="print every bad row (default: at most 50, then how many more)")

    customers = commands.add_parser("customers", help="customer tools")
    customer_commands = customers.add_subparsers(dest="customers_command", required=True, metavar="ACTION")
    invite = customer_commands.add_parser(
        "invite", help="print one-time deep links for unlinked customers",
        description="Print <external_id><TAB><link> for each customer not yet linked to a chat. A link "
                    "stays valid for INVITE_TTL_DAYS; running this again prints the same valid link. "
                    "The bot's username comes from BOT_USERNAME, else the one `stockbot run` last "
                    "learned, else the Bot API.",
    )
    invite.add_argument("--external-id", metavar="ID", help="only the customer with this external id")
    invite.add_argument("--token-only", action="store_true",
                        help="print tokens instead of t.me links (needs no bot username)")

    report = commands.add_parser("report", help="write the /report charts (PNG) and CSV to a folder",
                                 description="Write what /report sends in chat: the charts as PNG files "
                                             "and the CSV, into DIR; prints each file written.")
    report.add_argument("days", nargs="?", metavar="DAYS", help="the period in days, 1-365 (default 30)")
    report.add_argument("--out", metavar="DIR", required=True, help="the folder to write to (made if missing)")
    report.add_argument("--locale", choices=("en", "zh"), help="the charts' language (default: DEFAULT_LOCALE)")

    plan = commands.add_parser("plan", help="print the replenishment plan",
                               description="Print what to buy or move now, as /plan and GET "
                                           "/api/v1/replenishment give it.")
    plan.add_argument("--csv", action="store_true", help="as CSV with a header row, for a spreadsheet")

    doctor = commands.add_parser("doctor", help="check the set-up, one line each (exit 1 when any fails)",
                                 description="Check the settings, the database, the Bot API and token, "
                                             "admins, the CJK font, webhook and source settings: one line "
                                             "each, ✓ or ✗ with the fix. Exit 0 when all hold, 1 otherwise.")
    doctor.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="how long to wait for the database and the Bot API (default 5)")

    source = commands.add_parser("source", help="the shop's own database (SOURCE_DATABASE_URL)")
    source_commands = source.add_subparsers(dest="source_command", required=True, metavar="ACTION")
    source_commands.add_parser(
        "check", help="run SOURCE_STOCK_QUERY once and compare it with Stockbot's stock",
        description="Read SOURCE_STOCK_QUERY once and print the rows read, the levels that differ from "
                    "Stockbot's and the SKUs Stockbot does not know. Writes nothing. Exit 1 when the query fails.",
    )

    commands.add_parser("held", help="list batches of customer messages held for an admin's Send",
                        description="List the batches held by MASS_CONTACT_LIMIT: id, cause, customers, "
                                    "products, since. An admin sends or discards each in chat.")

    database = commands.add_parser("db", help="database tools")
    db_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="apply migrations to DATABASE_URL (run does this too)")
    cli_failed.add_parser(commands)
    return parser


# Each command imports what it needs when it runs (CLI start path): `--help`, `--version` and a
# bad setting answer at once, and no command pays for another's imports (aiogram takes seconds).


async def _db_upgrade(settings: Settings, _: argparse.Namespace) -> int:
    from bot.startup import open_database  # deferred: see above

    db = await open_database(settings)
    await db.dispose()
    print("database is up to date")
    return 0


async def _invite(settings: Settings, args: argparse.Namespace) -> int:
    from bot.startup import open_database  # deferred: see above
    from bot.shop.customers import issue_invites

    db = await open_database(settings)
    try:
        username = None if args.token_only else await _invite_username(settings, db)
        async with db.transaction() as session:
            issued = await issue_invites(session, args.external_id, ttl_days=settings.INVITE_TTL_DAYS)
    finally:
        await db.dispose()
    if args.external_id and not issued:
        print(f"no unlinked customer with external id {args.external_id!r}", file=sys.stderr)
        return 1
    for external_id, token in issued:
        target = token if username is None else f"https://t.me/{username}?start={token}"
        print(f"{external_id}\t{target}")
    return 0


async def _source_check(settings: Settings, _: argparse.Namespace) -> int:
    from bot.ingest.connectors.commands import source_check  # deferred: see above
    from bot.startup import open_database

    return await source_check(settings, await open_database(settings))


async def _invite_username(settings: Settings, db) -> str:  # type: ignore[no-untyped-def]
    """BOT_USERNAME, else the name the running bot last learned (stored), else getMe, offline first."""
    from bot.startup import bot_username  # deferred: see above
    from bot.shop.bot_identity import learned_username, remember_bot

    if settings.BOT_USERNAME:
        return settings.BOT_USERNAME
    async with db.read_session() as session:
        learned = await learned_username(session, settings.bot_id)
    if learned:
        return learned
    if settings.BOT_TOKEN is None:
        raise SettingsError("BOT_USERNAME", "is needed by `stockbot customers invite` offline (or set "
                                            "BOT_TOKEN, or use --token-only)")
    username = await bot_username(settings, "stockbot customers invite (or use --token-only)")
    async with db.transaction() as session:
        await remember_bot(session, settings.bot_id or 0, username)
    return username


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.memory import limit_malloc_arenas
    from bot.serve import run  # deferred: see above

    limit_malloc_arenas()
    return await run(settings, webhook=args.webhook)


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from bot.demo import run_demo  # deferred: see above (the demo runs the whole bot, aiogram included)

    return await run_demo(locales=("en", "zh") if args.locale == "both" else (args.locale,))


async def _play(settings: Settings, args: argparse.Namespace) -> int:
    from bot.play.start import run_play  # deferred: see above (the page runs the whole bot)

    return await run_play(settings, port=args.port, locale=args.locale, database_url=args.database_url)


def _handler(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    if args.command == "customers":
        return _invite
    if args.command == "db":
        return _db_upgrade
    if args.command in ("report", "plan"):
        from bot.cli_files import run_plan, run_report  # deferred: see above

        return run_report if args.command == "report" else run_plan
    if args.command == "doctor":
        from bot.doctor import run_doctor  # deferred: see above

        return run_doctor
    if args.command == "import":
        from bot.cli_import import run_import  # deferred: see above

        return run_import
    if args.command == "source":
        return _source_check
    if args.command == "held":
        from bot.held_command import held  # deferred: see above

        return held
    return {"demo": _demo, "play": _play, "run": _run, "failed": cli_failed.run}[args.command]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "run":
            settings.require_token("stockbot run")
            if args.webhook:
                if not settings.WEBHOOK_URL:
                    raise SettingsError("WEBHOOK_URL", "is required by `stockbot run --webhook`")
                from bot.serve import with_webhook_secret  # deferred (CLI start path)

                settings = with_webhook_secret(settings)
        if args.command != "demo":  # the demo prints conversations, and keeps its own quiet logging
            from bot.logs import configure_logging  # deferred (CLI start path): it loads SQLAlchemy

            configure_logging(settings)
        return asyncio.run(_handler(args)(settings, args))
    except SettingsError as exc:
        if args.command == "doctor":
            from bot.doctor import print_settings_problem  # deferred: see above

            return print_settings_problem(exc)
        print(f"stockbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
