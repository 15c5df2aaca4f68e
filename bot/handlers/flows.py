"""Half-finished conversations (FSM flows, e.g. the quantity and ETA of an order) end: by
`/cancel`, by any other command, or by themselves after `FLOW_MINUTES` without an answer.

Without this, a flow left open captured a "hello?" typed eight commands later as an order
quantity. The middleware stamps each step's time in the flow's data and ends a flow that is
stale or interrupted before any handler sees the update; `/whoami` lives here too, as the other
command about the person themselves rather than the shop.
"""

from __future__ import annotations

import time
from typing import Any

from aiogram import BaseMiddleware, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, TelegramObject

from bot.handlers.middlewares import Handler, Texts
from bot.shop.staff import Actor

FLOW_MINUTES = 10
_now = time.time  # a test moves the clock here
STEP_AT = "flow_step_at"  # in the flow's data: when its last step was answered (unix seconds)


def create_router() -> Router:
    router = Router(name="flows")
    router.message.register(cancel, Command("cancel"))
    router.message.register(whoami, Command("whoami"))
    return router


class FlowExpiry(BaseMiddleware):
    """Ends a flow that another command interrupts or that has waited too long; stamps the rest."""

    def __init__(self, minutes: float = FLOW_MINUTES) -> None:
        self.seconds = minutes * 60

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        state: FSMContext | None = data.get("state")
        if state is None:
            return await handler(event, data)
        if data.get("raw_state") is None:  # read once per update by aiogram's FSM middleware
            if isinstance(event, CallbackQuery):  # a button may start a flow; a message never does
                return await self._stamped(handler, event, data, state)
            return await handler(event, data)
        text = event.text or "" if isinstance(event, Message) else ""
        command = _command(text)
        step_at = (await state.get_data()).get(STEP_AT)
        stale = isinstance(step_at, int | float) and _now() - step_at > self.seconds
        if command and command != "cancel":
            await state.clear()  # the new command runs as if no flow had been open
        elif stale and command != "cancel":
            await state.clear()
            texts: Texts | None = data.get("texts")
            if texts is not None:
                if isinstance(event, Message):
                    await event.answer(texts("flow_expired"))
                elif isinstance(event, CallbackQuery):
                    await event.answer(texts("flow_expired"), show_alert=True)
            return None
        return await self._stamped(handler, event, data, state)

    @staticmethod
    async def _stamped(handler: Handler, event: TelegramObject, data: dict[str, Any], state: FSMContext) -> Any:
        result = await handler(event, data)
        if await state.get_state() is not None:  # a flow began or went on: its clock starts again
            await state.update_data({STEP_AT: _now()})
        return result


def _command(text: str) -> str:
    if not text.startswith("/") or len(text) < 2:
        return ""
    return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower()


async def cancel(message: Message, state: FSMContext, texts: Texts) -> None:
    if await state.get_state() is None:
        await message.answer(texts("cancel_nothing"))
        return
    await state.clear()
    await message.answer(texts("cancelled"))


async def whoami(message: Message, actor: Actor, texts: Texts) -> None:
    role = texts(f"role_{actor.kind}")
    await message.answer(texts("whoami", user_id=actor.user_id, role=role))
