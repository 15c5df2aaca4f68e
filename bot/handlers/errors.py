"""The last line of defence: a handler that fails tells the user, and its transaction is gone.

Both languages in one line, not a template: this runs when anything may have failed, the
templates included. Database trouble (PostgreSQL restarting, a full disk) is one log line a spell
(`DatabaseTrouble`, bot/db.py), not a traceback per update, and the user hears to try again soon.
"""

from __future__ import annotations

import logging

from aiogram.types import ErrorEvent

from bot.services import Services

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong and nothing was changed. Please try again. / 抱歉，出错了，没有做任何更改，请重试。"
BUSY = ("The shop's database is not answering; nothing was changed. Please try again in a minute. / "
        "店铺数据库暂时无法访问，没有做任何更改，请稍后再试。")


async def on_error(event: ErrorEvent, services: Services | None = None) -> bool:
    update = event.update
    trouble = services is not None and services.db.trouble.note(event.exception)
    if not trouble:
        log.exception("update %s failed", update.update_id, exc_info=event.exception)
    answer = BUSY if trouble else APOLOGY
    try:
        if update.message is not None:
            await update.message.answer(answer)
        elif update.callback_query is not None:
            await update.callback_query.answer(answer, show_alert=True)
    except Exception:  # the apology is best effort: the failure is logged above
        log.debug("could not apologise for update %s", update.update_id, exc_info=True)
    return True
