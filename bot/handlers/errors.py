"""The last line of defence: a handler that fails tells the user, and its transaction is gone."""

from __future__ import annotations

import logging

from aiogram.types import ErrorEvent

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong and nothing was changed. Please try again. / 抱歉，出错了，没有做任何更改，请重试。"


async def on_error(event: ErrorEvent) -> bool:
    log.exception("update %s failed", event.update.update_id, exc_info=event.exception)
    update = event.update
    try:
        if update.message is not None:
            await update.message.answer(APOLOGY)
        elif update.callback_query is not None:
            await update.callback_query.answer(APOLOGY, show_alert=True)
    except Exception:  # the apology is best effort: the failure is logged above
        log.debug("could not apologise for update %s", update.update_id, exc_info=True)
    return True
