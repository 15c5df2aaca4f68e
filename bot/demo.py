"""`stockbot demo`: the whole story, offline, on a temporary SQLite database and the sandbox.

Every step is real: the CSV importer seeds the shop, the aiogram dispatcher answers through the
sandbox, stock moves through the inventory service, the scheduler's jobs run, and the sender
delivers the outbox. At the end, each person's conversation is printed.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from bot.db import create_database
from bot.ingest.importer import import_csv
from bot.inventory.stock import StockChange, apply_changes
from bot.migrate import upgrade
from bot.conversation import Conversation, running_bot
from bot.sandbox.models import ButtonNotFound, SentMessage
from bot.settings import load_settings
from bot.shop.customers import issue_invites

CATALOG = """sku,name,category,price,brand,reorder_point,safety_stock,lead_time_days,supplier,attributes
LIP-RED,Velvet Matte Lipstick Red,lipstick,89.00,Rosa,6,4,10,Rosa Cosmetics Ltd,colour=red;finish=matte;unit=g;pack_size=1
LIP-RUBY,Velvet Matte Lipstick Ruby,lipstick,95.00,Rosa,4,2,10,Rosa Cosmetics Ltd,colour=red;finish=matte;unit=g;pack_size=1
LIP-CHERRY,Satin Lipstick Cherry Red,lipstick,79.00,Lumi,4,2,14,Lumi Beauty,colour=red;finish=satin;unit=g;pack_size=1
LIP-NUDE,Velvet Matte Lipstick Nude,lipstick,89.00,Rosa,4,2,10,Rosa Cosmetics Ltd,colour=nude;finish=matte;unit=g;pack_size=1
GLOSS-DOUSHA,唇釉 豆沙色,lip gloss,129.00,花漾,5,3,7,杭州花漾化妆品,colour=rose;unit=ml;pack_size=1
GLOSS-ZHENGHONG,唇釉 正红色,lip gloss,129.00,花漾,5,3,7,杭州花漾化妆品,colour=red;unit=ml;pack_size=1
GLOSS-FENG,丝绒唇釉 枫叶红,lip gloss,119.00,木槿,5,3,7,木槿美妆,colour=red;unit=ml;pack_size=1
SHAMPOO-HERB,Herbal Shampoo 400ml,hair,59.00,Verde,10,5,7,Verde Naturals,unit=ml;pack_size=1
"""
STOCK = """sku,warehouse,on_hand
LIP-RED,SH,30
LIP-RED,BJ,10
LIP-RUBY,SH,12
LIP-CHERRY,BJ,8
LIP-NUDE,SH,9
GLOSS-DOUSHA,SH,20
GLOSS-ZHENGHONG,SH,6
GLOSS-FENG,BJ,11
SHAMPOO-HERB,SH,40
"""
CUSTOMERS = """external_id,name,tier,phone,email,locale
C-ANN,Ann Lee,vip,+8613800138000,ann@example.com,en
C-LINA,李娜,regular,+8613900139000,,zh
C-MAX,Max Müller,regular,+4915112345678,,en
"""
LIP_RED_LEAD_DAYS = 10  # as in CATALOG: the purchaser takes the lead time as the ETA
ORDERS = """external_id,customer_external_id,sku,qty,status
SO-1001,C-ANN,LIP-RED,2,open
SO-1002,C-MAX,LIP-RED,1,backordered
"""


@dataclass(frozen=True, slots=True)
class Person:
    user_id: int
    name: str
    role: str


ALICE = Person(1, "Alice", "admin")
PETER = Person(2, "Peter", "purchaser")
RITA = Person(3, "Rita", "sales rep")
ANN = Person(11, "Ann Lee", "VIP customer, English")
LINA = Person(12, "李娜", "regular customer, Chinese")
MAX = Person(13, "Max Müller", "regular customer, English")
CAST = (ALICE, PETER, RITA, ANN, LINA, MAX)


def _say(step: str) -> None:
    print(f"  · {step}")


async def seed_shop(db) -> dict[str, str]:  # type: ignore[no-untyped-def]
    for kind, text in (("catalog", CATALOG), ("stock", STOCK), ("customers", CUSTOMERS), ("orders", ORDERS)):
        report = await import_csv(db, kind, text.encode(), label=f"{kind}.csv", actor="demo")
        if not report.ok:
            raise RuntimeError("\n".join(report.error_lines()))
        _say(f"imported {kind}.csv: {report.created} created, {report.updated} updated")
    async with db.transaction() as session:
        return dict(await issue_invites(session))


async def _sell(c: Conversation, sku: str, warehouse: str, units: int, tag: str) -> None:
    changes = [StockChange(sku, warehouse, delta=-1, reason="sale", actor="pos", event_id=f"{tag}-{n}")
               for n in range(units)]
    async with c.db.transaction() as session:
        await apply_changes(session, changes)
    await c.settle()


async def _press(c: Conversation, user_id: int, message: SentMessage, key: str, **context: object) -> None:
    """Press the button the templates call `key`, in whatever language the bot spoke to this person."""
    templates = c.runtime.services.templates
    shown = [button.text for button in message.buttons()]
    for locale in templates.locales:
        label = templates.plain(locale, key, **context)
        if label in shown:
            await c.press(user_id, message, label)
            return
    raise ButtonNotFound(f"no {key!r} button on message {message.message_id}; buttons: {shown}")


async def _story(c: Conversation, tokens: dict[str, str], staff_locale: str) -> int:
    """Plays the story; returns how many lines of the admin's chat came before the funnel."""

    async def staff(person: Person, text: str) -> None:
        await c.say(person.user_id, text, first_name=person.name, language_code=staff_locale)

    _say("the admin opens the bot and hands out roles")
    await staff(ALICE, "/start")
    await staff(ALICE, f"/grant {PETER.user_id} purchaser")
    await staff(ALICE, f"/grant {RITA.user_id} sales")

    _say("customers link their chats: Ann and Max by invite link, 李娜 by sharing her phone number")
    await c.say(ANN.user_id, f"/start {tokens['C-ANN']}", first_name="Ann")
    await c.say(MAX.user_id, f"/start {tokens['C-MAX']}", first_name="Max")
    await c.say(LINA.user_id, "/start", first_name="娜", language_code="zh")
    await c.act(c.sandbox.send_contact(LINA.user_id, "8613900139000", first_name="娜"))
    await c.say(LINA.user_id, "/notify 唇釉 正红色", first_name="娜", language_code="zh")

    _say("a sales rep asks for stock with a typo, and in pinyin")
    await staff(RITA, "/stock velvet lipstik red")
    await staff(RITA, "/stock chunyou")

    _say("the shop sells LIP-RED until it reaches its reorder point: the purchaser is prompted")
    await _sell(c, "LIP-RED", "SH", 30, "pos-a")
    await _sell(c, "LIP-RED", "BJ", 4, "pos-b")
    await _press(c, PETER.user_id, c.last(PETER.user_id), "btn_ordered")
    await staff(PETER, "24")
    await _press(c, PETER.user_id, c.last(PETER.user_id), "btn_eta_lead", days=LIP_RED_LEAD_DAYS)

    _say("LIP-RED sells out: Ann (VIP, open order) and Max (backorder) are contacted")
    await _sell(c, "LIP-RED", "BJ", 6, "pos-c")
    await _customers_answer_offers(c)

    _say("the supplier delivers early; waiting customers are told, VIP first")
    await staff(PETER, "/receive LIP-RED 24 SH")
    await c.settle()

    _say("唇釉 正红色 sells out: 李娜, on its waitlist, is asked in Chinese; she keeps waiting; it returns")
    await _sell(c, "GLOSS-ZHENGHONG", "SH", 6, "pos-d")
    lina_offer = c.last(LINA.user_id)
    if lina_offer.buttons():
        await _press(c, LINA.user_id, lina_offer, "recovery_btn_wait")
    await staff(PETER, "/receive GLOSS-ZHENGHONG 12 SH")
    await c.settle()

    _say("the admin reads the funnel")
    before_funnel = len(c.sandbox.transcript(ALICE.user_id))
    await staff(ALICE, "/stats 7")
    return before_funnel


async def _customers_answer_offers(c: Conversation) -> None:
    ann_offer = c.last(ANN.user_id)
    if ann_offer.buttons():
        await c.press(ANN.user_id, ann_offer, "Ruby")  # a product name, the same in every language
    max_offer = c.last(MAX.user_id)
    if max_offer.buttons():
        await _press(c, MAX.user_id, max_offer, "recovery_btn_wait")


def _print_chat(lines: list[tuple[str, str]], name: str) -> None:
    for who, text in lines:
        speaker = name if who == "user" else "Stockbot"
        body = textwrap.indent(text.strip(), "      ").lstrip()
        print(f"  {speaker}: {body}")


def _print_transcripts(c: Conversation, before_funnel: int) -> None:
    """Each person's chat; the admin's funnel comes last, after the story that fills it."""
    for person in CAST:
        lines = c.sandbox.transcript(person.user_id, show_buttons=True)
        print()
        print(f"━━ {person.name} ({person.role}) ━━")
        _print_chat(lines[:before_funnel] if person is ALICE else lines, person.name)
    print()
    print(f"━━ {ALICE.name} ({ALICE.role}) reads the recovery funnel ━━")
    _print_chat(c.sandbox.transcript(ALICE.user_id, show_buttons=True)[before_funnel:], ALICE.name)


async def run_demo(locales: tuple[str, ...] = ("en",)) -> int:
    """The story once per locale: the staff's language and the shop's default.

    Customers keep their own language whatever it is: Ann and Max read English, 李娜 Chinese.
    """
    logging.basicConfig(level=logging.WARNING)
    for locale in locales:
        await _run_story(locale)
    return 0


async def _run_story(locale: str) -> None:
    with tempfile.TemporaryDirectory(prefix="stockbot-demo-") as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'demo.db'}"
        settings = load_settings(
            _env_file=None, DATABASE_URL=url, BOT_TOKEN="123456:SANDBOX-TOKEN", ADMIN_IDS=str(ALICE.user_id),
            QUIET_HOURS="", DEFAULT_LOCALE=locale,
        )
        db = create_database(settings)
        try:
            print(f"Stockbot demo ({locale}): a shop on a temporary database, Telegram played by the built-in sandbox.")
            await upgrade(db)
            tokens = await seed_shop(db)
            async with running_bot(settings, db) as conversation:
                # The seed's own crossings (stock arriving) are handled before anyone waits,
                # as the running bot does within a second of an import.
                await conversation.runtime.process_events()
                before_funnel = await _story(conversation, tokens, locale)
                _print_transcripts(conversation, before_funnel)
        finally:
            await db.dispose()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(run_demo()))
