"""Every message exists in every locale, renders with sample data, and stays valid HTML."""

from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from jinja2 import meta

from bot.delivery.templates import TELEGRAM_TEXT_LIMIT, Templates, fit
from bot.handlers.callbacks import OfferAction, PlanAction, PromptAction
from bot.inventory.catalog import LevelView, StockView
from bot.planning.prompts import PLAN_PREFIX, PROMPT_PREFIX, prompt_buttons
from bot.planning.suggested_order import Suggestion
from bot.planning.replenishment import LeadTimeStats
from bot.planning.cover import ProductCover
from bot.planning.suggestions import Action, Line, Reason
from bot.recovery.comparison import Comparison
from bot.recovery.funnel import FunnelReport
from bot.recovery.uplift import Group, Interval, Uplift
from bot.recovery.offers import OFFER_PREFIX, OfferRenderer, SubView

TEMPLATES = Templates()
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
PRODUCT = SimpleNamespace(
    id=1, sku="LIP-1", name="Velvet <b>&Co</b> 唇釉", price=Decimal("12.50"), price_cents=1250,
    reorder_point=5, supplier="Rosa & Sons", lead_time_days=7, on_hand_total=3, reserved_total=1, available=2,
    category="lips",
)
OTHER = SimpleNamespace(**{**PRODUCT.__dict__, "id": 2, "sku": "LIP-2", "name": "Matte Rose"})
PROMPT = SimpleNamespace(product=PRODUCT, status="ordered", suggested_qty=12, ordered_qty=20, ordered_eta=NOW,
                         snoozed_until=None)
SUGGESTION = Suggestion(qty=12, available=2, incoming=4, reorder_point=5, supplier="Rosa & Sons", safety_stock=3,
                        sold=28, window_days=28, lead_time_days=7, lead_demand=7, waiting=8, vip_waiting=2,
                        floor_applied=False)
TRANSFER_LINE = Line(1, "LIP-1", "Velvet <b>&Co</b> 唇釉", 2, "SH", Action.TRANSFER, 20, "Rosa & Sons", 4.0, 5.0,
                     date(2026, 11, 30), Reason.SPARE_STOCK_ELSEWHERE, 14.0, 1, 3, "BJ")
BUY_LINE = Line(1, "LIP-1", "Velvet <b>&Co</b> 唇釉", 2, "SH", Action.BUY, 48, "Rosa & Sons", 4.0, None, None,
                Reason.COVER_BELOW_LEAD_TIME, 14.0, 12)
FORECAST_SUGGESTION = Suggestion(qty=48, available=20, incoming=0, reorder_point=5, supplier=None, lead_time_days=14,
                                 waiting=0, vip_waiting=0, floor_applied=True, daily_demand=4.0, days_of_cover=5.0,
                                 stockout_date=date(2026, 11, 30), pack_size=12, transfer=TRANSFER_LINE)
COVER = ProductCover(1, 20, 5, 4.0, 5.0, date(2026, 11, 30), 14.0)
CUSTOMER = SimpleNamespace(name="Ann <script>", external_id="C-1", opted_out=False, unreachable=True, chat_id=5)
NOTIFICATION = SimpleNamespace(created_at=NOW, kind="stockout_offer", state="failed", sent_at=None, not_before=NOW,
                               last_error="Bad Request: <oops>")
ENTRY = SimpleNamespace(joined_at=NOW, expires_at=NOW)
VIEW = StockView(PRODUCT, (LevelView("SH", 3, 1, 4, NOW),), ((OTHER, 9, Decimal("1.50")),))
SUBS = [SubView(2, "LIP-2", "Matte <Rose>", Decimal("13.00"), Decimal("0.50")),
        SubView(3, "LIP-3", "Satin Nude", Decimal("11.00"), Decimal("-1.50"))]
COUPON = SimpleNamespace(code="K7QX-93TM-HW4R", percent=15, expires_at=NOW)
HOLDOUT = Comparison(NOW, NOW, 10, 20, Uplift(Group(1200, 420, 399_000), Group(300, 60, 60_000),
                                               Interval(0.15, 0.1, 0.2), Interval(159_000, 100_000, 218_000)))
REPORT = FunnelReport(
    NOW, NOW, {"substitute_taken": 1, "waited": 1, "queued": 2}, {"sent": 5, "failed": 1, "pending": 2},
    affected=5, contacted=4, not_contactable=1, reached=3, pressed=2, substitute_taken=1, waited=1, bought=1,
    coupons_issued=3, coupons_redeemed=1, revenue_substitutes_cents=2300, revenue_redemptions_cents=900,
    restock_notified=4, outcomes=[("stats_reached", 3, 4), ("stats_pressed", 2, 3), ("stats_taken", 1, 3),
                                  ("stats_waited", 1, 3), ("stats_cancelled", 0, 3), ("stats_bought", 1, 4)],
)

# Sample data for each template; a template without a sample fails the test below, so a new
# message cannot be added without being rendered here in every locale.
SAMPLES: dict[str, dict] = {
    "help": {"commands": ("start", "help", "stock"), "kind": "sales"},
    "reorder_prompt": {"product": PRODUCT, "s": SUGGESTION, "prompt": PROMPT},
    "plan": {"lines": [TRANSFER_LINE, BUY_LINE], "total": 3, "hidden": 1,
             "suppliers": [("Rosa & Sons", LeadTimeStats(9.0, 0.75, 4)), (None, LeadTimeStats(7.0, None, 1))]},
    "purchaser_digest": {"prompts": [PROMPT], "day": "2026-11-25"},
    "lowstock": {"prompts": [PROMPT]},
    "low_digest": {"opened": 25, "total": 27, "products": [PRODUCT]},
    "low_rest": {"products": [PRODUCT], "first": 11, "last": 11, "total": 11},
    "held_batch": {"batch": SimpleNamespace(id=3, customers=812, products=40, cause="import stock <s>.csv"),
                   "limit": 500},
    "stock_hits": {"views": [VIEW], "query": "<lip>", "covers": {1: COVER}},
    "waitlist": {"entries": [(ENTRY, PRODUCT)]},
    "import_failed": {"lines": ["c.csv:3: price <x> is negative"], "hidden": 2, "label": "c.csv"},
    "delivery_log": {"customer": CUSTOMER, "rows": [NOTIFICATION]},
    "stats": {"r": REPORT, "days": 7},
    "stats_holdout": {"c": HOLDOUT},
    "stockout_offer": {"product": PRODUCT, "customer_name": "Ann <script>", "qty": 2, "has_line": True,
                       "subs": SUBS, "eta": NOW, "coupon": COUPON, "done": None},
    "restock_notice": {"product": PRODUCT, "customer_name": "Ann <script>", "few": True, "hold_until": NOW},
    "waitlist_expired": {"product": PRODUCT, "customer_name": "Ann <script>", "days": 90},
    "sales_digest": {"day": "2026-11-25", "large": 10,
                     "taken": [{"customer": CUSTOMER, "product": PRODUCT, "substitute": OTHER, "qty": 12}],
                     "cancelled": [{"customer": CUSTOMER, "product": PRODUCT, "qty": 1}]},
}


class _Balance(HTMLParser):
    allowed = {"b", "i", "u", "s", "code", "pre", "a", "tg-spoiler", "blockquote"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        assert tag in self.allowed, f"<{tag}> is not Telegram HTML"
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def assert_telegram_html(text: str) -> None:
    parser = _Balance()
    parser.feed(text)
    parser.close()
    assert not parser.stack, f"unclosed {parser.stack}"
    assert len(text) <= TELEGRAM_TEXT_LIMIT


def test_every_locale_has_the_same_templates_and_labels() -> None:
    assert TEMPLATES.locales == ("en", "zh")
    assert TEMPLATES.names("en") == TEMPLATES.names("zh")
    assert TEMPLATES.label_keys("en") == TEMPLATES.label_keys("zh")


@pytest.mark.parametrize("key", sorted(TEMPLATES.label_keys("en")))
def test_a_label_uses_the_same_placeholders_in_every_locale(key: str) -> None:
    def placeholders(locale: str) -> set[str]:
        return meta.find_undeclared_variables(TEMPLATES.env.parse(_source(locale, key)))

    assert placeholders("en") == placeholders("zh"), key


def _source(locale: str, key: str) -> str:
    import tomllib

    for path in (TEMPLATES.root / locale).glob("*.toml"):
        data = tomllib.loads(path.read_text("utf-8"))
        if key in data:
            return data[key]
    raise KeyError(key)


@pytest.mark.parametrize("locale", ["en", "zh"])
@pytest.mark.parametrize("name", sorted(TEMPLATES.names("en") | TEMPLATES.names("zh")))
def test_every_template_renders_as_valid_telegram_html(locale: str, name: str) -> None:
    assert name in SAMPLES, f"add sample data for the new template {name!r} to SAMPLES"
    text = TEMPLATES.render(locale, name, **SAMPLES[name])
    assert text.strip()
    assert_telegram_html(text)


def test_user_text_is_escaped_not_interpreted() -> None:
    text = TEMPLATES.render("en", "stock_hits", **SAMPLES["stock_hits"])
    assert "Velvet &lt;b&gt;&amp;Co&lt;/b&gt; 唇釉" in text and "<b>&Co</b>" not in text


def test_a_long_message_is_trimmed_at_a_line_boundary_with_markup_intact() -> None:
    views = [VIEW] * 400
    text = TEMPLATES.render("en", "stock_hits", views=views, query="x", covers={})
    assert len(text) <= TELEGRAM_TEXT_LIMIT and text.endswith("…")
    assert_telegram_html(text)
    one_line = "<b>" + "x" * 5000 + "</b>"
    trimmed = fit(one_line)
    assert len(trimmed) <= TELEGRAM_TEXT_LIMIT
    assert_telegram_html(trimmed)


def _callbacks(markup: dict | None) -> list[str]:
    assert markup is not None
    return [button["callback_data"] for row in markup["inline_keyboard"] for button in row]


def test_service_built_callback_data_is_what_the_handlers_parse() -> None:
    """Domain code packs callback data with its own prefix constants, without aiogram; the handlers
    parse it with CallbackData classes. Buttons as built must be what those classes pack."""
    assert (PromptAction.__prefix__, OfferAction.__prefix__, PlanAction.__prefix__) == (
        PROMPT_PREFIX, OFFER_PREFIX, PLAN_PREFIX)
    prompt = prompt_buttons(TEMPLATES, "en", SimpleNamespace(id=12))  # type: ignore[arg-type]
    assert _callbacks(prompt) == [PromptAction(action=a, prompt_id=12).pack() for a in ("ordered", "snooze", "dismiss")]
    offer = OfferRenderer(TEMPLATES, PRODUCT, SUBS, None).buttons("en", 7, has_line=True)
    assert _callbacks(offer) == [
        *(OfferAction(action="take", offer_id=7, product_id=sub.product_id).pack() for sub in SUBS),
        OfferAction(action="wait", offer_id=7, product_id=0).pack(),
        OfferAction(action="cancel", offer_id=7, product_id=0).pack(),
    ]
