"""The weekly report: each admin and purchaser gets /report's files once per shop week, through
the outbox (the files ride on the notification, bot/delivery/attachments.py)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database
from bot.delivery import attachments
from bot.delivery.outbox import STAFF_PRIORITY, Outgoing
from bot.delivery.templates import Templates
from bot.models import Role, utcnow
from bot.clock import shop_today
from bot.reports.data import DEFAULT_DAYS, load, load_comparison, load_funnel, rules_of
from bot.reports.files import render
from bot.settings import Settings
from bot.shop.staff import locale_of, staff_with_role

KEEP_FILES = timedelta(days=35)


async def report_recipients(session: AsyncSession, admin_ids: frozenset[int]) -> list[int]:
    found = set(admin_ids)
    for role in (Role.ADMIN, Role.PURCHASER):
        found.update(await staff_with_role(session, role))
    return sorted(found)


async def weekly_report(db: Database, settings: Settings, templates: Templates, *, days: int = DEFAULT_DAYS,
                        until: date | None = None) -> int:
    """The job: queue the report for each admin and purchaser, once per shop week; returns how many."""
    until = until or shop_today(settings.zone)
    year, week, _ = until.isocalendar()
    async with db.read_session() as session:
        recipients = await report_recipients(session, settings.ADMIN_IDS)
        locales = {user: await locale_of(session, user, settings.DEFAULT_LOCALE) for user in recipients}
        data = await load(session, days=days, until=until, rules=rules_of(settings)) if recipients else None
        funnel_report = await load_funnel(session, settings, days) if data and not data.empty else None
        against = await load_comparison(session, settings, days) if data and not data.empty else None
    async with db.transaction() as session:
        await attachments.forget_sent(session, utcnow() - KEEP_FILES)
    if data is None or data.empty:
        return 0
    files = {
        locale: await asyncio.to_thread(render, templates, locale, data, funnel_report, against=against)
        for locale in sorted(set(locales.values()))
    }
    queued = 0
    async with db.transaction() as session:
        for user, locale in locales.items():
            bundle = files[locale]
            text = templates.label(locale, "report_weekly_caption", caption=bundle.caption)
            message = Outgoing(f"weekly_report:{year}-W{week:02d}:{user}", user, "weekly_report", text,
                               priority=STAFF_PRIORITY)
            if await attachments.enqueue_with_files(session, message, [*bundle.photos, *bundle.documents]):
                queued += 1
    return queued

