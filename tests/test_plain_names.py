"""A product name with `&`, `<` and `>` reads as written everywhere it appears.

Telegram parses message text as HTML (so the name must be escaped there, and reads right once
parsed) but shows button labels, callback answers, alerts and inline result titles as plain text
(so the name must be sent verbatim: `Salt &amp; Pepper` on a button is a bug people see)."""

from __future__ import annotations

import asyncio

from bot.delivery.templates import Templates
from bot.sandbox.formatting import plain_text
from tests.factories import ADMIN, add_customer, add_order, add_product, change_stock
from tests.harness import Harness

NAME = "Salt & Pepper <Hot> Mix"
GONE_SUB = "Chili & Lime <Sea> Flakes"  # a substitute that sells out before it is taken
SUB = "Garlic & Herb <Fine> Blend"
BUYER, WAITER, LEAVER = 101, 103, 104


def test_plain_labels_keep_values_verbatim_and_drop_the_labels_own_markup() -> None:
    templates = Templates()
    for locale in templates.locales:
        assert NAME in templates.plain(locale, "btn_leave", name=NAME)
        assert "&amp;" in templates.label(locale, "btn_leave", name=NAME)  # HTML messages: escaped
        joined = templates.plain(locale, "notify_joined", name=NAME, days=30)
        assert NAME in joined and "<b>" not in joined


def _verbatim(label: str) -> None:
    assert NAME in label or SUB in label or GONE_SUB in label, label
    assert "&amp;" not in label and "&lt;" not in label, label


def _reads(message_text: str, *names: str) -> None:
    """HTML as sent: valid (the sandbox checks) and, once parsed, naming each product as written."""
    parsed = plain_text(message_text, "HTML")
    for name in names:
        assert name in parsed, parsed


async def test_a_name_with_html_characters_reads_as_written_in_every_place(bot_harness: Harness) -> None:
    h = bot_harness
    async with h.db.transaction() as session:
        product = await add_product(session, "SP-1", name=NAME, category="spice", stock={"SH": 2}, reorder_point=1)
        await add_product(session, "SP-2", name=GONE_SUB, category="spice", stock={"SH": 1}, reorder_point=0)
        await add_product(session, "SP-3", name=SUB, category="spice", stock={"SH": 5}, reorder_point=0)
        buyer = await add_customer(session, "C-BUY", BUYER, tier="vip")
        await add_order(session, buyer, product, 1)
        await add_customer(session, "C-WAIT", WAITER)
        await add_customer(session, "C-LEAVE", LEAVER)
    await h.services.catalog.refresh(h.db)

    # Staff: /stock hits, and the inline query's result (title plain, message HTML).
    hits = await h.say(ADMIN, "/stock SP-1")
    _reads(hits[0].text or "", NAME)
    await h.act(h.sandbox.inline_query(ADMIN, "SP-1"))
    (result, *_) = h.sandbox.inline_answers(user_id=ADMIN)[-1].results
    _verbatim(result["title"])
    _reads(result["input_message_content"]["message_text"], NAME)

    # Customers: join, list, leave.
    for user in (WAITER, LEAVER):
        _reads((await h.say(user, "/notify SP-1"))[0].text or "", NAME)
    listing = (await h.say(LEAVER, "/waitlist"))[0]
    _reads(listing.text or "", NAME)
    (leave,) = [b.text for b in listing.buttons()]
    assert leave == f"Leave: {NAME}"
    await h.press(LEAVER, listing, "Leave:")
    _verbatim(h.alerts(LEAVER)[-1])

    # It runs out: the reorder prompt and the offer (text, substitute buttons).
    await change_stock(h, "SP-1", -2)
    await h.settle()
    prompt = [m for m in h.sandbox.messages(ADMIN) if "SP-1" in m.plain_text and m.buttons()]
    assert prompt, "no reorder prompt"
    _reads(prompt[-1].text or "", NAME)
    offer = h.last(BUYER)
    _reads(offer.text or "", NAME, GONE_SUB, SUB)
    labels = [b.text for b in offer.buttons()]
    assert f"✅ {GONE_SUB} · 10.00" in labels and f"✅ {SUB} · 10.00" in labels

    # A substitute sold out before the press: the alert names it; taking the other: the toast.
    await change_stock(h, "SP-2", -1)
    await h.settle()
    await h.press(BUYER, offer, GONE_SUB)
    alert = h.sandbox.callback_answers(user_id=BUYER)[-1]
    assert alert.show_alert and alert.text is not None
    _verbatim(alert.text)
    await h.press(BUYER, h.last(BUYER), SUB)
    _verbatim(h.alerts(BUYER)[-1])
    _reads(h.last(BUYER).text or "", SUB)  # the offer, edited to say what was reserved

    # It comes back: the restock notice.
    await change_stock(h, "SP-1", 5)
    await h.runtime.process_events()
    # Delivered as the running bot does (one message a second per chat: the offer went out just now).
    stop = asyncio.Event()
    sender = asyncio.create_task(h.runtime.sender.run(stop))
    try:
        notice = await h.sandbox.wait_for(
            lambda: next((m for m in h.sandbox.messages(WAITER) if "back in stock" in m.plain_text), None), timeout=15
        )
    finally:
        stop.set()
        await sender
    _reads(notice.text or "", NAME)
    # Nowhere did a customer see an entity where a character belongs.
    for user in (BUYER, WAITER, LEAVER):
        for message in h.sandbox.messages(user):
            assert "&amp;" not in message.plain_text and "&lt;" not in message.plain_text
            assert all("&amp;" not in b.text for b in message.buttons())
        assert all("&amp;" not in text and "&lt;" not in text for text in h.alerts(user))
