"""Purchasers (and admins): reorder prompt buttons, /lowstock, /plan, /receive, /count."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handlers import keyboards
from bot.handlers.callbacks import OrderEta, OrderQty, PlanAction, PlanDraft, PromptAction
from bot.handlers.filters import HasRole
from bot.handlers.middlewares import Texts
from bot.inventory.stock import (
    StockChange,
    StockError,
    apply_change,
    default_warehouse,
    warehouse_ids,
)
from bot.models import ACTIVE_PROMPT_STATUSES, MovementReason, Product, ReorderPrompt, Role
from bot.planning import drafts, purchasing
from bot.planning.leadtimes import supplier_samples
from bot.planning.prompt_actions import PromptGone, dismiss, mark_ordered, order_from_plan, snooze
from bot.planning.prompts import live_prompts
from bot.planning.state import forecast_as_of
from bot.planning.suggested_order import suggest
from bot.planning.suggestions import Action, Line, suggestions
from bot.planning.warnings import stock_changed
from bot.services import Services
from bot.shop.staff import Actor

MAX_QTY = 1_000_000
PLAN_SHOWN = 15  # lines (and buttons) in the /plan message; the drafts and the API have all


class Ordering(StatesGroup):
    quantity = State()
    eta = State()


def create_router() -> Router:
    router = Router(name="purchaser")
    router.message.filter(HasRole(Role.PURCHASER))
    router.callback_query.filter(HasRole(Role.PURCHASER))
    router.message.register(lowstock, Command("lowstock"))
    router.message.register(receive, Command("receive"))
    router.message.register(count, Command("count"))
    router.message.register(plan, Command("plan"))
    router.callback_query.register(plan_pressed, PlanAction.filter())
    router.callback_query.register(draft_pressed, PlanDraft.filter())
    router.callback_query.register(prompt_pressed, PromptAction.filter())
    router.callback_query.register(quantity_picked, OrderQty.filter(), StateFilter(Ordering.quantity))
    router.message.register(quantity_typed, StateFilter(Ordering.quantity), F.text, ~F.text.startswith("/"))
    router.callback_query.register(eta_picked, OrderEta.filter(), StateFilter(Ordering.eta))
    router.message.register(eta_typed, StateFilter(Ordering.eta), F.text, ~F.text.startswith("/"))
    router.callback_query.register(stale_order_button, OrderQty.filter())
    router.callback_query.register(stale_order_button, OrderEta.filter())
    return router


async def lowstock(message: Message, session: AsyncSession, texts: Texts) -> None:
    prompts = await live_prompts(session)
    await message.answer(texts.render("lowstock", prompts=prompts))


# --- /receive and /count -----------------------------------------------------------------------


def _parse_stock_args(args: str | None, *, allow_zero: bool) -> tuple[str, int, str | None] | None:
    parts = (args or "").split()
    if len(parts) not in (2, 3) or not parts[1].lstrip("+").isdigit() or len(parts[1]) > 9:
        return None
    qty = int(parts[1])
    if qty > MAX_QTY or (qty == 0 and not allow_zero):
        return None
    return parts[0][:64], qty, (parts[2][:64] if len(parts) == 3 else None)


async def _change_stock(
    message: Message, session: AsyncSession, actor: Actor, texts: Texts, services: Services,
    args: str | None, *, counting: bool,
) -> None:
    usage = "usage_count" if counting else "usage_receive"
    parsed = _parse_stock_args(args, allow_zero=counting)
    if parsed is None:
        await message.answer(texts(usage))
        return
    sku, qty, warehouse = parsed
    product = await session.scalar(select(Product).where(Product.sku == sku))
    if product is None:
        await message.answer(texts("unknown_sku", sku=sku))
        return
    warehouse = warehouse or await default_warehouse(session, product.id)
    if warehouse is None:
        await message.answer(texts("name_warehouse", sku=sku))
        return
    try:
        # A typo must not create a warehouse: chat changes only use known ones (imports create).
        await warehouse_ids(session, [warehouse], create=warehouse == "MAIN")
        if counting:
            change = StockChange(sku, warehouse, on_hand=qty, reason=MovementReason.COUNT, actor=f"tg:{actor.user_id}")
            result = await apply_change(session, change, create_warehouses=False)
        else:
            result = await purchasing.receive(session, sku, warehouse, qty, f"tg:{actor.user_id}")
    except StockError as error:
        await message.answer(texts("stock_refused", reason=str(error)))
        return
    key = "counted" if counting else "received"
    await message.answer(texts(key, sku=sku, warehouse=warehouse, qty=qty, delta=result.delta,
                               on_hand=result.on_hand, available=result.available_after))


async def receive(message: Message, command: CommandObject, session: AsyncSession, actor: Actor,
                  texts: Texts, services: Services) -> None:
    await _change_stock(message, session, actor, texts, services, command.args, counting=False)


async def count(message: Message, command: CommandObject, session: AsyncSession, actor: Actor,
                texts: Texts, services: Services) -> None:
    await _change_stock(message, session, actor, texts, services, command.args, counting=True)


# --- prompt buttons ----------------------------------------------------------------------------


async def _close_prompt_message(query: CallbackQuery, texts: Texts, key: str, **context: object) -> None:
    if isinstance(query.message, Message) and query.message.html_text:
        note = texts(key, **context)
        await query.message.edit_text(f"{query.message.html_text}\n\n{note}", reply_markup=None)


async def prompt_pressed(
    query: CallbackQuery, callback_data: PromptAction, session: AsyncSession, actor: Actor,
    texts: Texts, services: Services, state: FSMContext,
) -> None:
    prompt = await session.get(ReorderPrompt, callback_data.prompt_id)
    if prompt is None or prompt.status not in ACTIVE_PROMPT_STATUSES:
        await query.answer(texts("prompt_gone"), show_alert=True)
        return
    action = callback_data.action
    if action == "snooze":
        await snooze(session, prompt.id, actor.user_id)
        await query.answer(texts("prompt_snoozed"))
        await _close_prompt_message(query, texts, "prompt_snoozed")
    elif action == "dismiss":
        await dismiss(session, prompt.id, actor.user_id)
        await query.answer(texts("prompt_dismissed"))
        await _close_prompt_message(query, texts, "prompt_dismissed")
    elif action == "ordered":
        product = await session.get(Product, prompt.product_id)
        assert product is not None
        suggestion = await suggest(session, product, services.settings)
        await state.set_state(Ordering.quantity)
        message_id = query.message.message_id if query.message else None
        await state.update_data(prompt_id=prompt.id, prompt_message_id=message_id, plan_product_id=None,
                                lead_time_days=suggestion.lead_time_days)
        await query.answer()
        await query.bot.send_message(
            actor.chat_id, texts("ask_quantity", sku=product.sku, suggested=suggestion.qty),
            reply_markup=keyboards.order_quantities(prompt.id, max(suggestion.qty, 1)),
        )
    else:
        await query.answer(texts("button_refused"), show_alert=True)


async def _ask_eta(target: Message, state: FSMContext, texts: Texts, qty: int) -> None:
    data = await state.update_data(qty=qty)
    await state.set_state(Ordering.eta)
    await target.answer(
        texts("ask_eta", qty=qty),
        reply_markup=keyboards.order_etas(texts, data["prompt_id"], data.get("lead_time_days", 7)),
    )


async def quantity_picked(query: CallbackQuery, callback_data: OrderQty, state: FSMContext, texts: Texts) -> None:
    data = await state.get_data()
    if data.get("prompt_id") != callback_data.prompt_id or not 0 < callback_data.qty <= MAX_QTY:
        await query.answer(texts("button_refused"), show_alert=True)
        return
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
        await _ask_eta(query.message, state, texts, callback_data.qty)


async def quantity_typed(message: Message, state: FSMContext, texts: Texts) -> None:
    text = (message.text or "").strip()
    if not text.isdigit() or len(text) > 9 or not 0 < int(text) <= MAX_QTY:
        await message.answer(texts("bad_quantity"))
        return
    await _ask_eta(message, state, texts, int(text))


def _eta_from_days(days: int) -> datetime:
    return datetime.combine((datetime.now(UTC) + timedelta(days=days)).date(), time(12), tzinfo=UTC)


def _parse_eta(text: str) -> datetime | None:
    text = text.strip()
    if text.isdigit() and len(text) <= 3 and 0 < int(text) <= 365:
        return _eta_from_days(int(text))
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return None
    today = datetime.now(UTC).date()
    if not today <= day <= today + timedelta(days=366):
        return None
    return datetime.combine(day, time(12), tzinfo=UTC)


async def _finish_order(
    target: Message, state: FSMContext, session: AsyncSession, actor: Actor, texts: Texts, services: Services,
    eta: datetime,
) -> None:
    data = await state.get_data()
    await state.clear()
    try:
        if data.get("plan_product_id"):  # from /plan: no prompt needed
            product = await order_from_plan(session, data["plan_product_id"], data["plan_warehouse_id"],
                                                    data["qty"], eta, actor.user_id)
        else:
            prompt = await mark_ordered(session, data["prompt_id"], data["qty"], eta, actor.user_id)
            product = await session.get(Product, prompt.product_id)
    except PromptGone:
        await target.answer(texts("prompt_gone"))
        return
    assert product is not None
    # What is on its way changes the cover.
    await stock_changed(session, services.settings, services.templates, [product.id])
    recorded = texts("order_recorded", sku=product.sku, qty=data["qty"], eta=eta.date().isoformat())
    if data.get("prompt_message_id") and target.bot:
        # The prompt itself loses its buttons, so nobody orders the same thing twice, and the one
        # confirmation answers it.
        await target.bot.edit_message_reply_markup(chat_id=actor.chat_id, message_id=data["prompt_message_id"], reply_markup=None)
        await target.bot.send_message(actor.chat_id, recorded, reply_to_message_id=data["prompt_message_id"])
    else:
        await target.answer(recorded)


async def eta_picked(query: CallbackQuery, callback_data: OrderEta, state: FSMContext, session: AsyncSession,
                     actor: Actor, texts: Texts, services: Services) -> None:
    data = await state.get_data()
    if data.get("prompt_id") != callback_data.prompt_id or not 0 < callback_data.days <= 365:
        await query.answer(texts("button_refused"), show_alert=True)
        return
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
        await _finish_order(query.message, state, session, actor, texts, services, _eta_from_days(callback_data.days))


async def eta_typed(message: Message, state: FSMContext, session: AsyncSession, actor: Actor, texts: Texts,
                    services: Services) -> None:
    eta = _parse_eta(message.text or "")
    if eta is None:
        await message.answer(texts("bad_eta"))
        return
    await _finish_order(message, state, session, actor, texts, services, eta)


async def stale_order_button(query: CallbackQuery, texts: Texts) -> None:
    await query.answer(texts("prompt_gone"), show_alert=True)


# --- /plan -------------------------------------------------------------------------------------


PLAN_BUTTON_CHARS = 64  # a label this long still reads whole on a phone's button


def _button_text(text: str) -> str:
    """Buttons show plain text (so SKUs and suppliers are cut as written, never inside an HTML
    escape), ended with … where cut."""
    return text if len(text) <= PLAN_BUTTON_CHARS else text[: PLAN_BUTTON_CHARS - 1] + "…"


def _plan_keyboard(texts: Texts, lines: list[Line], suppliers: list[str | None]) -> InlineKeyboardMarkup | None:
    rows = []
    for n, line in enumerate(lines, start=1):
        if line.action is Action.TRANSFER:
            text = texts.plain("btn_plan_transfer", n=n, qty=line.qty, sku=line.sku, source=line.from_warehouse,
                         target=line.warehouse)
            data = PlanAction(action="t", product_id=line.product_id, source_id=line.from_warehouse_id or 0,
                              target_id=line.warehouse_id, qty=line.qty)
        else:
            text = texts.plain("btn_plan_buy", n=n, qty=line.qty, sku=line.sku, warehouse=line.warehouse)
            data = PlanAction(action="b", product_id=line.product_id, source_id=0, target_id=line.warehouse_id,
                              qty=line.qty)
        rows.append([InlineKeyboardButton(text=_button_text(text), callback_data=data.pack())])
    for supplier in suppliers:
        rows.append([InlineKeyboardButton(
            text=_button_text(texts.plain("btn_plan_draft", supplier=supplier or texts.plain("no_supplier"))),
            callback_data=PlanDraft(supplier=drafts.supplier_key(supplier)).pack(),
        )])
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


async def plan(message: Message, session: AsyncSession, texts: Texts, services: Services) -> None:
    if await forecast_as_of(session) is None:  # never an undated "nothing to buy"
        await message.answer(texts("plan_computing"))
        return
    lines = await suggestions(session)
    shown = lines[:PLAN_SHOWN]
    times = await supplier_samples(session, services.settings.zone)
    named = sorted({line.supplier for line in lines} | set(times.samples), key=lambda name: name or "")
    rates = [(name, times.stats(name, 0)) for name in named if times.samples.get(name)]
    await message.answer(
        texts.render("plan", lines=shown, total=len(lines), hidden=len(lines) - len(shown), suppliers=rates),
        reply_markup=_plan_keyboard(texts, shown, drafts.suppliers_to_order(lines)),
    )


async def plan_pressed(
    query: CallbackQuery, callback_data: PlanAction, session: AsyncSession, actor: Actor, texts: Texts,
    services: Services, state: FSMContext,
) -> None:
    """A /plan (or prompt) button: only a suggestion that still stands is carried out."""
    if callback_data.action == "t":
        try:
            moved = await purchasing.transfer(session, callback_data.product_id, callback_data.source_id,
                                              callback_data.target_id, callback_data.qty, actor.user_id)
        except (purchasing.TransferRefused, StockError):
            await query.answer(texts("plan_stale"), show_alert=True)
            return
        await query.answer()
        await query.bot.send_message(actor.chat_id, texts(
            "transfer_done", qty=moved.transfer.qty, sku=moved.sku, source=moved.source, target=moved.target,
            on_hand=moved.source_on_hand,
        ))
        return
    buying = [
        line for line in await suggestions(session, [callback_data.product_id])
        if callback_data.action == "b" and line.action is Action.BUY and line.warehouse_id == callback_data.target_id
    ]
    if not buying:
        await query.answer(texts("plan_stale"), show_alert=True)
        return
    line = buying[0]
    await state.set_state(Ordering.quantity)
    await state.update_data(prompt_id=0, plan_product_id=line.product_id, plan_warehouse_id=line.warehouse_id,
                            prompt_message_id=None, lead_time_days=max(1, round(line.lead_time_days)))
    await query.answer()
    await query.bot.send_message(
        actor.chat_id, texts("ask_quantity", sku=line.sku, suggested=line.qty),
        reply_markup=keyboards.order_quantities(0, line.qty),
    )


async def draft_pressed(query: CallbackQuery, callback_data: PlanDraft, session: AsyncSession, actor: Actor,
                        texts: Texts) -> None:
    supplier, lines = drafts.draft(await suggestions(session, exclude_transfers=False), callback_data.supplier)
    if not lines:
        await query.answer(texts("plan_stale"), show_alert=True)
        return
    await query.answer()
    name = supplier or texts("no_supplier")
    filename = "purchase-request-" + "".join(c if c.isalnum() else "-" for c in name)[:40] + ".csv"
    await query.bot.send_document(
        actor.chat_id, BufferedInputFile(drafts.draft_csv(lines), filename=filename),
        caption=texts("plan_draft_caption", supplier=name, lines=len(lines)),
    )
