"""Admins: /grant, /revoke, /stats, and CSV import by sending the file with a caption."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.types import BufferedInputFile, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handlers.commands import publish_commands_for
from bot.handlers.downloads import download_capped
from bot.handlers.filters import HasRole
from bot.handlers.middlewares import Texts
from bot.ingest.files import import_file
from bot.ingest.importer import KINDS
from bot.models import Role, utcnow
from bot.recovery import comparison, funnel, hold
from bot.reports import charts, uplift_chart
from bot.services import Services
from bot.shop import staff
from bot.shop.staff import Actor

MAX_CSV_BYTES = 20 * 1024 * 1024  # what the Bot API lets a bot download
ERRORS_SHOWN = 30


def create_router() -> Router:
    router = Router(name="admin")
    router.message.filter(HasRole(Role.ADMIN))
    router.message.register(grant, Command("grant"))
    router.message.register(revoke, Command("revoke"))
    router.message.register(stats, Command("stats"))
    router.message.register(import_document, F.document)
    return router


def _user_id(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) <= 16 and 0 < int(text) < 2**53 else None


async def grant(message: Message, command: CommandObject, session: AsyncSession, actor: Actor, texts: Texts,
                services: Services, bot: Bot) -> None:
    parts = (command.args or "").split()
    roles = {role.value: role for role in Role}
    by_name = len(parts) == 2 and parts[0].startswith("@") and bool(staff.normal_username(parts[0]))
    if len(parts) != 2 or (not by_name and _user_id(parts[0]) is None) or parts[1].lower() not in roles:
        await message.answer(texts("usage_grant"))
        return
    role = roles[parts[1].lower()]
    user_id = await staff.user_id_by_username(session, parts[0]) if by_name else int(parts[0])
    if user_id is None:
        await message.answer(texts("unknown_username", username=parts[0].removeprefix("@")[:64]))
        return
    await staff.grant(session, user_id, role, actor.user_id)
    await message.answer(texts("granted", user_id=user_id, role=texts(f"role_{role.value}")))
    await publish_commands_for(bot, services, user_id, role.value)


async def revoke(message: Message, command: CommandObject, session: AsyncSession, texts: Texts,
                 services: Services, bot: Bot, fsm_storage: BaseStorage) -> None:
    user_id = _user_id((command.args or "").strip())
    if user_id is None:
        await message.answer(texts("usage_revoke"))
        return
    if user_id in services.settings.ADMIN_IDS:
        await message.answer(texts("revoke_config_admin", user_id=user_id))
        return
    if not await staff.revoke(session, user_id):
        await message.answer(texts("revoke_none", user_id=user_id))
        return
    # A flow the user had half done (an order's quantity, say) must not finish after the role
    # that started it is gone, nor resume if the role comes back.
    await drop_conversation(fsm_storage, bot.id, user_id)
    await message.answer(texts("revoked", user_id=user_id))
    await publish_commands_for(bot, services, user_id, "stranger")


async def drop_conversation(storage: BaseStorage, bot_id: int, user_id: int) -> None:
    """Forget the user's conversation state in their private chat with the bot."""
    key = StorageKey(bot_id=bot_id, chat_id=user_id, user_id=user_id)
    await storage.set_state(key, None)
    await storage.set_data(key, {})


async def stats(message: Message, command: CommandObject, session: AsyncSession, texts: Texts,
                services: Services) -> None:
    args = (command.args or "").strip()
    if args and not args.isdigit():
        text = await funnel.customer_log_text(session, services.templates, texts.locale, args[:128])
        await message.answer(text or texts("unknown_customer", external_id=args[:128]))
        return
    days = int(args) if args and len(args) <= 3 else 7 if not args else 0
    if not 1 <= days <= 366:
        await message.answer(texts("usage_stats"))
        return
    until = utcnow()
    settings = services.settings
    report = await funnel.build_report(session, since=until - timedelta(days=days), until=until,
                                       attribution_days=settings.ATTRIBUTION_DAYS)
    against = await comparison.build(session, since=until - timedelta(days=days), until=until,
                                     attribution_days=settings.ATTRIBUTION_DAYS, percent=settings.HOLDOUT_PERCENT)
    text = texts.render("stats", r=report, days=days)
    discarded = await hold.discarded_since(session, until - timedelta(days=days))
    if discarded.batches:  # held batches an admin dropped (MASS_CONTACT_LIMIT)
        text += "\n" + texts("stats_discarded", batches=discarded.batches, customers=discarded.customers)
    await message.answer(text + "\n\n" + texts.render("stats_holdout", c=against))
    png = await asyncio.to_thread(charts.funnel_png, services.templates, texts.locale, report, days)
    await message.answer_photo(BufferedInputFile(png, "funnel.png"))
    if against.has_control_group:
        png = await asyncio.to_thread(uplift_chart.uplift_png, services.templates, texts.locale, against, days)
        await message.answer_photo(BufferedInputFile(png, "uplift.png"))


async def import_document(message: Message, session: AsyncSession, texts: Texts, services: Services,
                          bot: Bot) -> None:
    kind = (message.caption or "").strip().lower()
    document = message.document
    assert document is not None
    if kind not in KINDS:
        await message.answer(texts("usage_import"))
        return
    if (document.file_size or 0) > MAX_CSV_BYTES:  # said up front: not even started
        await message.answer(texts("import_too_big"))
        return
    # The import is its own unit of work; end this update's transaction first so the two
    # never wait on each other for SQLite's write lock.
    await session.commit()
    label = document.file_name or f"{kind}.csv"
    with tempfile.TemporaryFile() as spool:  # on disk: the importer streams it, twice
        if not await download_capped(bot, document, spool, MAX_CSV_BYTES):  # file_size may be absent
            await message.answer(texts("import_too_big"))
            return
        report = await import_file(services.db, kind, spool, label=label, actor="tg:import",
                                   phone_region=services.settings.PHONE_REGION, zone=services.settings.zone)
    if not report.ok:
        lines, hidden = report.shown_errors(ERRORS_SHOWN)
        await message.answer(texts.render("import_failed", lines=lines, hidden=hidden, label=label))
        return
    if kind == "catalog":
        await services.catalog.refresh(services.db)
    await message.answer(texts("import_done", label=label, rows=report.rows, created=report.created,
                               updated=report.updated, unchanged=report.unchanged))
