"""`stockbot failed [--resend [ID ...]]`: the messages that failed for good, and sending them again."""

from __future__ import annotations

import argparse

from bot.cli_db import opened_database, read_once
from bot.settings import Settings


def add_parser(commands) -> None:  # type: ignore[no-untyped-def]
    failed = commands.add_parser(
        "failed", help="list messages that failed for good; --resend queues them again",
        description="List the messages Telegram refused (newest first): id, chat, kind, since, error. "
                    "An outage of the Bot API never fails a message, it only delays it.",
    )
    failed.add_argument("--resend", nargs="*", type=int, metavar="ID",
                        help="queue these failed messages again (all of them when no ID is given)")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.delivery.failures import failed_messages, resend_failed  # deferred (CLI start path)

    if args.resend is not None:
        async with opened_database(settings) as db, db.transaction() as session:
            queued = await resend_failed(session, args.resend or None)
        print(f"queued again: {len(queued)} message(s)" + (f" ({', '.join(map(str, queued))})" if queued else ""))
        missing = sorted(set(args.resend) - set(queued))
        if missing:
            print(f"not failed (left alone): {', '.join(map(str, missing))}")
        return 0
    failed = await read_once(settings, failed_messages)
    if not failed:
        print("no failed messages")
    for message in failed:
        error = " ".join(message.error.split())[:200]
        print(f"{message.id}\t{message.chat_id}\t{message.kind}\t{message.created_at:%Y-%m-%d %H:%M}Z\t{error}")
    return 0
