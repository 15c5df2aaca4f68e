"""The fake Bot API must look like Telegram to a real aiogram Bot/Dispatcher, or every bot test built on it lies."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.default import DefaultBotProperties
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQuery,
    InlineQueryResultArticle,
    InputTextMessageContent,
    Message,
)

from bot.sandbox import BotApiSandbox, ButtonNotFound, sandbox_bot

USER = 1001
OTHER = 1002


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d)] for t, d in pairs])


@pytest.fixture
async def bot(sandbox: BotApiSandbox) -> AsyncIterator[Bot]:
    client = sandbox_bot(sandbox, default=DefaultBotProperties(parse_mode="HTML"))
    yield client
    await client.session.close()


@asynccontextmanager
async def polling(dp: Dispatcher, bot: Bot, sandbox: BotApiSandbox, **kwargs: object) -> AsyncIterator[None]:
    """Run the real Dispatcher against the sandbox; stop_polling needs it to have really started."""
    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=5, **kwargs)
    )
    await sandbox.wait_for(lambda: sandbox.is_polling() or task.done())
    try:
        yield
    finally:
        await dp.stop_polling()
        await task


async def test_send_message_returns_a_valid_message_and_is_recorded(sandbox: BotApiSandbox, bot: Bot) -> None:
    me = await bot.get_me()
    first = await bot.send_message(USER, "<b>Lipstick</b> is back &amp; ready", reply_markup=keyboard(("Buy", "buy:7")))
    second = await bot.send_message(USER, "second")

    assert me.username == sandbox.bot_username and me.id == sandbox.bot_id
    assert (first.message_id, second.message_id) == (1, 2)
    assert first.chat.type == "private" and first.chat.id == USER
    assert first.from_user is not None and first.from_user.id == sandbox.bot_id
    assert first.text == "Lipstick is back & ready"  # Telegram returns rendered text
    stored = sandbox.messages(USER)[0]
    assert stored.text == "<b>Lipstick</b> is back &amp; ready" and stored.parse_mode == "HTML"
    assert stored.inline_buttons() == [("Buy", "buy:7")]
    assert stored.button("Bu").callback_data == "buy:7"
    assert sandbox.last_message(USER).text == "second"
    assert [c.method for c in sandbox.calls] == ["getMe", "sendMessage", "sendMessage"]
    assert sandbox.calls[1].params["chat_id"] == USER


async def test_message_ids_are_per_chat_and_shared_with_user_messages(sandbox: BotApiSandbox, bot: Bot) -> None:
    sandbox.send_text(USER, "hi")
    reply = await bot.send_message(USER, "hello")
    other = await bot.send_message(OTHER, "hello")
    assert (reply.message_id, other.message_id) == (2, 1)


async def test_edits_update_state_and_reject_what_telegram_rejects(sandbox: BotApiSandbox, bot: Bot) -> None:
    sent = await bot.send_message(USER, "Price: 10", reply_markup=keyboard(("Buy", "buy")))

    await bot.edit_message_reply_markup(chat_id=USER, message_id=sent.message_id, reply_markup=keyboard(("Sold", "x")))
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=USER, message_id=sent.message_id, reply_markup=keyboard(("Sold", "x")))
    edited = await bot.edit_message_text("Price: 12", chat_id=USER, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("nope", chat_id=USER, message_id=999)

    assert isinstance(edited, Message) and edited.text == "Price: 12"
    current = sandbox.message(USER, sent.message_id)
    assert current.text == "Price: 12"
    assert current.reply_markup is None  # editing text without reply_markup drops the keyboard, as in Telegram
    assert [v.text for v in current.edits] == ["Price: 10", "Price: 10"]
    assert len(sandbox.messages(USER)) == 1


async def test_invalid_html_and_oversized_callback_data_are_rejected(sandbox: BotApiSandbox, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(USER, "Price <10 EUR")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(USER, "<b>unclosed")
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "x", reply_markup=keyboard(("Buy", "b" * 65)))
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "a" * 4097)
    assert sandbox.messages(USER) == []


@pytest.mark.parametrize(
    ("arrange", "error", "text"),
    [
        (lambda sb: sb.fail_next("sendMessage", status=429, retry_after=7), TelegramRetryAfter, "retry after 7"),
        (lambda sb: sb.block_chat(USER), TelegramForbiddenError, "bot was blocked by the user"),
        (lambda sb: sb.unknown_chat(USER), TelegramBadRequest, "chat not found"),
        (lambda sb: sb.fail_next("sendMessage", status=502), TelegramServerError, "Bad Gateway"),
    ],
)
async def test_failures_surface_as_aiogram_exceptions(
    sandbox: BotApiSandbox, bot: Bot, arrange: Callable[[BotApiSandbox], None], error: type[Exception], text: str
) -> None:
    arrange(sandbox)
    with pytest.raises(error, match=text) as caught:
        await bot.send_message(USER, "hi")
    if isinstance(caught.value, TelegramRetryAfter):
        assert caught.value.retry_after == 7
    assert sandbox.messages(USER) == []
    assert sandbox.calls[-1].status in (429, 403, 400, 502) and not sandbox.calls[-1].ok


async def test_fail_next_counts_down_and_can_target_one_chat(sandbox: BotApiSandbox, bot: Bot) -> None:
    sandbox.fail_next("sendMessage", status=500, count=2, chat_id=USER)
    await bot.send_message(OTHER, "unaffected")
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.send_message(USER, "hi")
    await bot.send_message(USER, "hi")
    assert [m.chat_id for m in sandbox.messages()] == [OTHER, USER]


async def test_wrong_token_is_401_and_unknown_method_is_404(sandbox: BotApiSandbox) -> None:
    intruder = sandbox_bot(sandbox, token="999:WRONG-TOKEN")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await intruder.get_me()
    finally:
        await intruder.session.close()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sandbox.base_url}/bot{sandbox.token}/sendTelepathy") as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}


async def test_get_updates_offset_confirms_and_limit_caps(sandbox: BotApiSandbox, bot: Bot) -> None:
    ids = [sandbox.send_text(USER, f"m{i}")["update_id"] for i in range(3)]
    assert sandbox.pending_updates() == 3

    first = await bot.get_updates(limit=2)
    again = await bot.get_updates()  # unconfirmed updates are delivered again
    after = await bot.get_updates(offset=ids[1] + 1)
    drained = await bot.get_updates(offset=ids[2] + 1)

    assert [u.update_id for u in first] == ids[:2]
    assert [u.update_id for u in again] == ids
    assert [u.update_id for u in after] == ids[2:]
    assert drained == [] and sandbox.pending_updates() == 0
    assert first[0].message is not None and first[0].message.text == "m0"


async def test_long_poll_returns_on_injection_or_after_timeout(sandbox: BotApiSandbox, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await sandbox.wait_until_polling(timeout=1)
    started = time.monotonic()
    await asyncio.sleep(0.05)
    assert not poll.done()
    sandbox.send_text(USER, "wake up")
    updates = await asyncio.wait_for(poll, 2)
    assert [u.message.text for u in updates if u.message] == ["wake up"]
    assert time.monotonic() - started < 1

    async with aiohttp.ClientSession() as http:  # fractional timeout: aiogram only sends whole seconds
        started = time.monotonic()
        url = f"{sandbox.base_url}/bot{sandbox.token}/getUpdates"
        async with http.post(url, data={"timeout": "0.3", "offset": str(updates[-1].update_id + 1)}) as resp:
            assert await resp.json() == {"ok": True, "result": []}
        assert 0.25 < time.monotonic() - started < 2


async def test_second_poller_terminates_the_first_with_conflict(sandbox: BotApiSandbox, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await sandbox.wait_until_polling(timeout=1)
    second = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await asyncio.wait_for(first, 2)
    sandbox.send_text(USER, "hello")
    assert len(await second) == 1


async def test_dispatcher_handles_command_and_wait_until_consumed(sandbox: BotApiSandbox, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer(f"Welcome, {message.from_user.first_name if message.from_user else '?'}")

    update = sandbox.send_text(USER, "/start", first_name="Ann")
    async with polling(dp, bot, sandbox, handle_as_tasks=False):
        await sandbox.wait_until_consumed(timeout=3)
        # handle_as_tasks=False: the handler finished before the confirming getUpdates
        assert [m.text for m in sandbox.messages(USER)] == ["Welcome, Ann"]
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert sandbox.pending_updates() == 0


async def test_button_press_flow_and_stale_keyboard(sandbox: BotApiSandbox, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.callback_query(F.data.startswith("notify:"))
    async def notify(query: CallbackQuery) -> None:
        await query.answer("We'll tell you", show_alert=True)
        assert isinstance(query.message, Message)
        await query.message.edit_text("You're on the list")

    offer = await bot.send_message(USER, "Out of stock", reply_markup=keyboard(("Notify me", "notify:42")))
    async with polling(dp, bot, sandbox):
        sandbox.press_button_with_text(USER, offer, "Notify")
        await sandbox.wait_for(lambda: sandbox.message(USER, offer.message_id).edited, timeout=3)

    answer = sandbox.callback_answers(chat_id=USER)
    assert [(a.data, a.text, a.show_alert) for a in answer] == [("notify:42", "We'll tell you", True)]
    assert sandbox.unanswered_callbacks() == []
    with pytest.raises(ButtonNotFound):  # the edit removed the keyboard
        sandbox.press_button(USER, offer, "notify:42")
    assert sandbox.transcript(USER) == [
        ("bot", "Out of stock"),
        ("user", "[button: Notify me]"),
        ("bot", "[edited] You're on the list"),
    ]


async def test_callback_answered_twice_or_unknown_is_rejected(sandbox: BotApiSandbox, bot: Bot) -> None:
    offer = await bot.send_message(USER, "x", reply_markup=keyboard(("Go", "go")))
    query_id = sandbox.press_button(USER, offer, "go")["callback_query"]["id"]
    assert await bot.answer_callback_query(query_id)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("no-such-query")


async def test_force_callback_delivers_forged_data(sandbox: BotApiSandbox, bot: Bot) -> None:
    dp = Dispatcher()
    seen: list[str | None] = []

    @dp.callback_query()
    async def record(query: CallbackQuery) -> None:
        seen.append(query.data)
        await query.answer()

    offer = await bot.send_message(USER, "x", reply_markup=keyboard(("Buy", "buy:1")))
    with pytest.raises(ButtonNotFound):
        sandbox.press_button(USER, offer, "buy:999")
    async with polling(dp, bot, sandbox, handle_as_tasks=False):
        sandbox.force_callback(USER, offer, "buy:999")
        await sandbox.wait_until_consumed(timeout=3)
    assert seen == ["buy:999"]


async def test_user_document_round_trips_through_get_file_and_download(sandbox: BotApiSandbox, bot: Bot) -> None:
    content = "sku,qty\nLIP-1,3\n".encode()
    update = sandbox.send_document(USER, "stock.csv", content, caption="today")
    file_id = update["message"]["document"]["file_id"]

    info = await bot.get_file(file_id)
    buffer = io.BytesIO()
    await bot.download(file_id, destination=buffer)

    assert info.file_size == len(content) and info.file_path
    assert buffer.getvalue() == content
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("forged")


async def test_bot_uploads_document_and_photo_then_reuses_file_id(sandbox: BotApiSandbox, bot: Bot) -> None:
    sent = await bot.send_document(USER, BufferedInputFile(b"a,b\n1,2\n", filename="report.csv"), caption="<i>report</i>")
    photo = await bot.send_photo(USER, BufferedInputFile(b"\x89PNG fake", filename="p.png"))
    assert sent.document is not None and photo.photo
    again = await bot.send_document(USER, sent.document.file_id)

    stored = sandbox.messages(USER)
    assert [m.kind for m in stored] == ["document", "photo", "document"]
    assert stored[0].file is not None and stored[0].file.content == b"a,b\n1,2\n"
    assert stored[0].plain_text == "report" and sent.caption == "report"
    assert again.document is not None and again.document.file_id == sent.document.file_id
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_document(USER, "not-a-file-id")


async def test_set_my_commands_is_recorded_per_scope_and_language(sandbox: BotApiSandbox, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    await bot.set_my_commands(
        [BotCommand(command="stock", description="Bestand")], scope=BotCommandScopeAllPrivateChats(), language_code="de"
    )

    assert sandbox.commands() == [{"command": "start", "description": "Start"}]
    assert sandbox.commands("all_private_chats", "de") == [{"command": "stock", "description": "Bestand"}]
    assert sandbox.commands("all_private_chats") == []
    fetched = await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="de")
    assert [c.command for c in fetched] == ["stock"]


async def test_webhook_blocks_get_updates_until_deleted(sandbox: BotApiSandbox, bot: Bot) -> None:
    await bot.set_webhook("https://example.invalid/hook")
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    sandbox.send_text(USER, "lost")
    await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates() == [] and sandbox.webhook_url == ""


async def test_contacts_stickers_edits_and_inline_queries(sandbox: BotApiSandbox, bot: Bot) -> None:
    own = sandbox.send_contact(USER, "+491701234567")["message"]["contact"]
    forwarded = sandbox.send_contact(USER, "+491709999999", contact_user_id=None)["message"]["contact"]
    sticker = sandbox.send_sticker(USER)
    said = sandbox.send_text(USER, "lipstik")
    sandbox.edit_text(USER, said["message"]["message_id"], "lipstick")
    query_id = sandbox.inline_query(USER, "lip")["inline_query"]["id"]

    updates = await bot.get_updates()
    assert own["user_id"] == USER and "user_id" not in forwarded
    assert updates[2].message is not None and updates[2].message.sticker is not None
    assert updates[4].edited_message is not None and updates[4].edited_message.text == "lipstick"
    assert isinstance(updates[5].inline_query, InlineQuery) and updates[2].update_id == sticker["update_id"]

    article = InlineQueryResultArticle(
        id="1", title="Lipstick", input_message_content=InputTextMessageContent(message_text="Lipstick")
    )
    await bot.answer_inline_query(query_id, [article], cache_time=0)
    assert [r["id"] for r in sandbox.inline_answers(user_id=USER)[0].results] == ["1"]
    assert [text for who, text in sandbox.transcript(USER)] == [
        "[contact: +491701234567]", "[contact: +491709999999]", "[sticker]", "lipstik", "[edited] lipstick",
    ]


async def test_delete_message_and_chat_action(sandbox: BotApiSandbox, bot: Bot) -> None:
    sent = await bot.send_message(USER, "temp")
    assert await bot.send_chat_action(USER, "typing")
    assert await bot.delete_message(USER, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(USER, sent.message_id)
    assert sandbox.messages(USER, include_deleted=False) == []
    assert sandbox.messages(USER)[0].deleted


async def test_wait_for_messages_times_out_with_what_it_has(sandbox: BotApiSandbox, bot: Bot) -> None:
    await bot.send_message(USER, "only one")
    with pytest.raises(TimeoutError, match="only one"):
        await sandbox.wait_for_messages(USER, 2, timeout=0.1)
    waiter = asyncio.create_task(sandbox.wait_for_messages(USER, 2, timeout=2))
    await bot.send_message(USER, "two")
    assert [m.text for m in await waiter] == ["only one", "two"]


async def test_thread_mode_serves_another_loop_and_wakes_its_long_polls() -> None:
    sandbox = BotApiSandbox()
    sandbox.start_in_thread()
    client = sandbox_bot(sandbox)
    try:
        poll = asyncio.create_task(client.get_updates(timeout=5))
        await sandbox.wait_until_polling(timeout=2)
        sandbox.send_text(USER, "from the test thread")
        assert len(await asyncio.wait_for(poll, 2)) == 1
        await asyncio.gather(*(client.send_message(USER, f"n{i}") for i in range(20)))
        got = await sandbox.wait_for_messages(USER, 20, timeout=2)
        assert sorted(m.message_id for m in got) == list(range(2, 22))
    finally:
        await client.session.close()
        sandbox.stop_thread()


# Imports every module of the package, then lists the `bot.*` modules that came with them.
_IMPORT_THE_SANDBOX = """
import importlib, json, pkgutil, sys
import bot.sandbox
for module in pkgutil.iter_modules(bot.sandbox.__path__):
    importlib.import_module(f"bot.sandbox.{module.name}")
print(json.dumps([bot.sandbox.__file__, sorted(name for name in sys.modules if name.startswith("bot."))]))
"""


def test_the_sandbox_imports_nothing_of_the_product() -> None:
    """It is the fake Telegram: were it to import the product, a bug there could hide in both sides."""
    root = Path(__file__).resolve().parents[1]
    # A fresh interpreter: this one has the product loaded already. From the root, `bot` is this copy.
    done = subprocess.run([sys.executable, "-c", _IMPORT_THE_SANDBOX], cwd=root, capture_output=True, text=True,
                          timeout=60, check=True)
    location, loaded = json.loads(done.stdout)
    assert Path(location).is_relative_to(root / "bot" / "sandbox")
    assert "bot.sandbox.server" in loaded  # the listing sees the package's own modules
    # `import bot` runs bot/__init__.py, which only defers aiogram's model building (no product code).
    assert [name for name in loaded if not name.startswith("bot.sandbox") and name != "bot.lazy_aiogram"] == []
