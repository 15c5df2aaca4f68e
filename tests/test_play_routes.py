"""`stockbot play`'s page server: its routes against the real bot on the sandbox (aiohttp's test
client, no browser), and the rebuilding of the bot's HTML into what the page may draw."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bot.db import Database
from bot.demo import ANN, LINA, seed_shop
from bot.models import Customer, StaffMember
from bot.play.people import PURCHASER_ID, SALES_ID, seeded_cast
from bot.play.render import safe_html
from bot.play.start import database_play, introduce_staff
from bot.play.web import create_play_app
from bot.play.world import Play, playing
from bot.settings import Settings

ACT = {"X-Play": "1"}
ADMIN_ID = 1  # tests' settings make 1 the admin (tests/factories.py), as play's seeded shop does


@pytest.fixture
async def play(settings: Settings, db: Database) -> AsyncIterator[Play]:
    tokens = await seed_shop(db)

    async def introduce(play: Play) -> None:
        await introduce_staff(play)
        await play.conversation.say(ANN.user_id, f"/start {tokens['C-ANN']}", first_name="Ann")

    async with playing(settings, db, seeded_cast("en"), setup=introduce) as running:
        yield running


@pytest.fixture
async def client(play: Play) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_play_app(play))) as test_client:
        yield test_client


def _texts(chat: dict[str, Any], who: str) -> list[str]:
    return [entry.get("html") or entry.get("text") or "" for entry in chat["entries"] if entry["from"] == who]


async def test_the_page_and_its_script_are_served_with_a_policy_that_forbids_anything_foreign(client: TestClient) -> None:
    page = await client.get("/")
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    assert '<script src="/play.js"' in await page.text()
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    script = await client.get("/play.js")
    assert script.status == 200 and "javascript" in script.headers["Content-Type"]
    assert (await client.get("/../settings.py")).status == 404


async def test_people_lists_every_role_and_several_customers(client: TestClient) -> None:
    people = (await (await client.get("/play/people")).json())["people"]
    roles = [person["role"] for person in people]
    assert roles[:3] == ["admin", "purchaser", "sales"] and roles.count("customer") >= 3


async def test_a_message_written_on_the_page_reaches_the_bot_and_its_answer_comes_back(
    client: TestClient, play: Play
) -> None:
    answer = await client.post(f"/play/people/{ADMIN_ID}/messages", json={"text": "/stock velvet lipstik red"}, headers=ACT)
    assert answer.status == 200
    await play.sandbox.wait_for(lambda: "LIP-RED" in play.sandbox.last_message(ADMIN_ID).plain_text)
    chat = await (await client.get(f"/play/people/{ADMIN_ID}/chat")).json()
    assert _texts(chat, "user")[-1] == "/stock velvet lipstik red"
    assert "LIP-RED" in _texts(chat, "bot")[-1]
    assert [entry["id"] for entry in chat["entries"]] == sorted(entry["id"] for entry in chat["entries"])
    assert "grant" in [command["command"] for command in chat["commands"]]


async def test_a_stockout_from_the_panel_goes_through_the_signed_api_and_its_offer_button_works(
    client: TestClient, play: Play
) -> None:
    before = len(play.sandbox.messages(ANN.user_id))
    sent = await client.post("/play/stock-events", json={"sku": "LIP-RED", "action": "stockout"}, headers=ACT)
    assert sent.status == 200
    assert (await sent.json())["api"] == {"applied": 2, "duplicates": 0}  # SH and BJ, one batch
    offer = await play.sandbox.wait_for(
        lambda: next((m for m in play.sandbox.messages(ANN.user_id)[before:] if m.buttons()), None), timeout=10
    )
    chat = await (await client.get(f"/play/people/{ANN.user_id}/chat")).json()
    [drawn] = [entry for entry in chat["entries"] if entry["id"] == offer.message_id]
    labels = [button["text"] for row in drawn["buttons"] for button in row]
    wait = labels.index(play.conversation.services.templates.plain("en", "recovery_btn_wait"))
    pressed = await client.post(f"/play/people/{ANN.user_id}/press",
                                json={"message_id": offer.message_id, "button": wait}, headers=ACT)
    assert pressed.status == 200
    waiting = "You are on the waitlist"
    await play.sandbox.wait_for(lambda: any(waiting in m.plain_text for m in play.sandbox.messages(ANN.user_id)))
    # The keyboard it was pressed on is gone now: pressing it again is refused, not replayed.
    again = await client.post(f"/play/people/{ANN.user_id}/press",
                              json={"message_id": offer.message_id, "button": wait}, headers=ACT)
    assert again.status == 409


async def test_a_restock_from_the_panel_moves_the_units_in(client: TestClient, play: Play) -> None:
    sent = await client.post("/play/stock-events", json={"sku": "LIP-NUDE", "warehouse": "SH", "action": "restock",
                                                         "qty": 5}, headers=ACT)
    assert sent.status == 200
    stock = (await (await client.get("/play/stock")).json())["stock"]
    assert {"sku": "LIP-NUDE", "name": "Velvet Matte Lipstick Nude", "warehouse": "SH", "on_hand": 14} in stock


async def test_the_api_refusing_an_event_comes_back_with_its_reason_and_changes_nothing(
    client: TestClient, play: Play
) -> None:
    sent = await client.post("/play/stock-events", json={"sku": "NOPE", "warehouse": "SH", "action": "restock",
                                                         "qty": 5}, headers=ACT)
    assert sent.status == 422
    assert "NOPE" in (await sent.json())["api"]["errors"][0]["message"]
    assert all(row["sku"] != "NOPE" for row in await play.stock())


async def test_a_csv_dropped_in_the_admins_chat_is_imported_as_the_caption_says(client: TestClient, play: Play) -> None:
    form = FormData()
    form.add_field("file", b"sku,warehouse,on_hand\nLIP-NUDE,BJ,7\n", filename="stock.csv", content_type="text/csv")
    form.add_field("caption", "stock")
    sent = await client.post(f"/play/people/{ADMIN_ID}/files", data=form, headers=ACT)
    assert sent.status == 200
    await play.sandbox.wait_for(
        lambda: any("stock.csv" in m.plain_text for m in play.sandbox.messages(ADMIN_ID)), timeout=10
    )
    assert {"sku": "LIP-NUDE", "name": "Velvet Matte Lipstick Nude", "warehouse": "BJ", "on_hand": 7} in await play.stock()
    chat = await (await client.get(f"/play/people/{ADMIN_ID}/chat")).json()
    assert any(entry.get("document") == "stock.csv" for entry in chat["entries"])


async def test_files_the_bot_sent_are_downloads_and_only_real_pictures_are_shown(client: TestClient, play: Play) -> None:
    await client.post(f"/play/people/{ADMIN_ID}/messages", json={"text": "/report 30"}, headers=ACT)
    sent = await play.sandbox.wait_for(
        lambda: [m for m in play.sandbox.messages(ADMIN_ID) if m.file is not None and m.kind == "document"] or None,
        timeout=60,
    )
    photos = [m for m in play.sandbox.messages(ADMIN_ID) if m.kind == "photo"]
    assert photos, "the report's charts are pictures"
    picture = await client.get(f"/play/files/{photos[0].file.file_id}")
    assert picture.status == 200 and picture.headers["Content-Type"] == "image/png"
    document = await client.get(f"/play/files/{sent[0].file.file_id}?download=1")
    assert document.headers["Content-Type"] == "application/octet-stream"
    assert document.headers["Content-Disposition"].startswith("attachment;")
    assert b"sku" in await document.read()
    assert (await client.get("/play/files/SBX-document-999999")).status == 404


async def test_a_users_file_pretending_to_be_a_picture_is_only_ever_a_download(client: TestClient, play: Play) -> None:
    play.sandbox.send_document(ANN.user_id, "x.png", b"<script>alert(1)</script>", mime_type="image/png")
    [stored] = [m for m in play.sandbox.user_messages(ANN.user_id) if "document" in m]
    answer = await client.get(f"/play/files/{stored['document']['file_id']}")
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.headers["Content-Disposition"].startswith("attachment;")


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        (f"/play/people/{ADMIN_ID}/messages", {"text": "hi"}, {}, 403),  # no X-Play: a cross-site form
        (f"/play/people/{ADMIN_ID}/messages", "not json", ACT, 400),
        (f"/play/people/{ADMIN_ID}/messages", ["a list"], ACT, 400),
        (f"/play/people/{ADMIN_ID}/messages", {"text": ""}, ACT, 400),
        (f"/play/people/{ADMIN_ID}/messages", {"text": "x" * 4097}, ACT, 400),
        (f"/play/people/{ADMIN_ID}/messages", {"text": 7}, ACT, 400),
        ("/play/people/999/messages", {"text": "hi"}, ACT, 404),
        ("/play/people/abc/messages", {"text": "hi"}, ACT, 404),
        (f"/play/people/{ADMIN_ID}/press", {"message_id": 999, "button": 0}, ACT, 409),
        (f"/play/people/{ADMIN_ID}/press", {"message_id": 1, "button": -1}, ACT, 400),
        (f"/play/people/{ADMIN_ID}/press", {"message_id": True, "button": 0}, ACT, 400),
        (f"/play/people/{ADMIN_ID}/files", {"text": "not multipart"}, ACT, 400),
        ("/play/stock-events", {"sku": "LIP-RED", "action": "explode"}, ACT, 400),
        ("/play/stock-events", {"sku": "LIP-RED", "warehouse": "SH", "action": "restock", "qty": 0}, ACT, 400),
        ("/play/stock-events", {"sku": "LIP-RED", "warehouse": "SH", "action": "restock", "qty": "9"}, ACT, 400),
        ("/play/stock-events", {"sku": "NOPE", "action": "stockout"}, ACT, 409),
    ],
)
async def test_bad_requests_get_a_clear_answer_and_change_nothing(
    client: TestClient, play: Play, path: str, body: Any, headers: dict[str, str], status: int
) -> None:
    stock_before, calls_before = await play.stock(), len(play.sandbox.user_messages(ADMIN_ID))
    if isinstance(body, str):
        answer = await client.post(path, data=body, headers={**headers, "Content-Type": "application/json"})
    else:
        answer = await client.post(path, json=body, headers=headers)
    assert answer.status == status
    assert (await answer.json())["error"]
    assert await play.stock() == stock_before
    assert len(play.sandbox.user_messages(ADMIN_ID)) == calls_before


async def test_hostile_text_written_by_a_user_comes_back_as_text(client: TestClient, play: Play) -> None:
    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    await client.post(f"/play/people/{LINA.user_id}/messages", json={"text": hostile}, headers=ACT)
    chat = await (await client.get(f"/play/people/{LINA.user_id}/chat")).json()
    assert _texts(chat, "user")[-1] == hostile  # the page sets it with textContent, never as HTML
    assert all("<img" not in text and "<script" not in text for text in _texts(chat, "bot"))


async def test_the_event_stream_sends_the_chat_and_then_each_change(client: TestClient, play: Play) -> None:
    async with client.get(f"/play/people/{ADMIN_ID}/events") as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        first = await stream.content.readuntil(b"\n\n")
        assert first.startswith(b"data: {")
        await client.post(f"/play/people/{ADMIN_ID}/messages", json={"text": "/help"}, headers=ACT)
        async with asyncio.timeout(10):  # other chats' counts may change first: read on until it comes
            while b"/help" not in await stream.content.readuntil(b"\n\n"):
                pass


@pytest.mark.parametrize(
    ("telegram_html", "drawn"),
    [
        ("<b>Red</b> &amp; <i>matte</i>", "<b>Red</b> &amp; <i>matte</i>"),
        ("<strong>a</strong><em>b</em><ins>c</ins><del>d</del>", "<b>a</b><i>b</i><u>c</u><s>d</s>"),
        ("code <code>LIP-10</code> <pre>x</pre>", "code <code>LIP-10</code> <pre>x</pre>"),
        ('<tg-spoiler>s</tg-spoiler><span class="tg-spoiler">t</span>',
         '<span class="spoiler">s</span><span class="spoiler">t</span>'),
        ('<a href="https://shop.example/p?a=1&amp;b=2">shop</a>',
         '<a href="https://shop.example/p?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">shop</a>'),
        ('<a href="javascript:alert(1)">x</a>', "x"),
        ('<a href=" JaVaScRiPt:alert(1)">x</a>', "x"),
        ('<a href="&#106;avascript:alert(1)">x</a>', "x"),
        ('<b onclick="alert(1)">x</b>', "<b>x</b>"),
        ("<img src=x onerror=alert(1)>", ""),
        ("<script>alert(1)</script>", "alert(1)"),
        ("<style>body{}</style>", "body{}"),
        ("1 &lt; 2 &gt; 0 &quot;q&quot;", '1 &lt; 2 &gt; 0 "q"'),
        ("<b>unclosed", "<b>unclosed</b>"),
        ("</b>stray", "stray"),
        ('<span style="x">plain</span>', "plain"),
        ("<iframe src=//evil></iframe>ok", "ok"),
    ],
)
def test_the_bots_html_is_rebuilt_from_telegrams_tags_only(telegram_html: str, drawn: str) -> None:
    assert safe_html(telegram_html, "HTML") == drawn


def test_text_without_a_parse_mode_is_escaped_whole() -> None:
    assert safe_html("<b>x</b> & y", None) == "&lt;b&gt;x&lt;/b&gt; &amp; y"


async def test_on_your_own_database_the_page_plays_its_staff_and_its_linked_customers(
    settings: Settings, db: Database
) -> None:
    await seed_shop(db)
    async with db.transaction() as session:
        await session.execute(update(Customer).where(Customer.external_id == "C-LINA").values(
            telegram_user_id=LINA.user_id, chat_id=LINA.user_id))
    async with database_play(settings, "zh") as play:
        people = [(person.role, person.name) for person in play.people]
        assert people == [("admin", "Admin"), ("purchaser", "Purchaser"), ("sales", "Sales rep"),
                          ("customer", "李娜")]  # Ann and Max never linked a chat: nobody to play
        async with db.transaction() as session:
            roles = dict((await session.execute(select(StaffMember.telegram_user_id, StaffMember.role))).all())
        assert roles == {PURCHASER_ID: "purchaser", SALES_ID: "sales"}
        assert play.conversation.services.settings.DEFAULT_LOCALE == "zh"
