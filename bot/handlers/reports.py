"""Purchasers and admins: /report [DAYS], charts as one album and the CSVs as documents (the
control group's comparison in a second one, while there is a control group)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, InputMediaPhoto, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handlers.filters import HasRole
from bot.handlers.middlewares import Texts
from bot.models import Role
from bot.reports import data, files
from bot.services import Services


def create_router() -> Router:
    router = Router(name="reports")
    router.message.filter(HasRole(Role.PURCHASER))
    router.message.register(report, Command("report"))
    return router


async def report(message: Message, command: CommandObject, session: AsyncSession, texts: Texts,
                 services: Services) -> None:
    days = data.parse_days(command.args)
    if days is None:
        await message.answer(texts("usage_report"))
        return
    report_files = await files.build(session, services.db, services.settings, services.templates, days=days,
                                     locale=texts.locale)
    if report_files is None:
        await message.answer(texts("report_empty"))
        return
    album = [
        InputMediaPhoto(media=BufferedInputFile(photo.content, photo.filename), caption=report_files.caption if i == 0 else None)
        for i, photo in enumerate(report_files.photos)
    ]
    await message.answer_media_group(album)
    for document in report_files.documents:
        await message.answer_document(BufferedInputFile(document.content, document.filename), caption=document.caption)
