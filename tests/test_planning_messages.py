"""Planning's messages in both languages, and its buttons as the handlers parse them."""

import pytest

from bot.handlers.callbacks import PlanAction
from bot.planning.prompts import transfer_data
from tests.test_messages import FORECAST_SUGGESTION, PROMPT, TEMPLATES, TRANSFER_LINE, assert_telegram_html

EXPECTED = {
    "en": ("4.0</b> a day", "5.0</b> days", "runs out 2026-11-30", "packs of 12", "from BJ to SH", "lead time 14 days"),
    "zh": ("每天 <b>4.0</b>", "5.0</b> 天", "2026-11-30 售罄", "每包 12", "从 BJ 调 <b>20</b> 到 SH", "交货期 14 天"),
}


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_the_forecast_prompt_shows_demand_cover_and_the_transfer(locale: str) -> None:
    text = TEMPLATES.render(locale, "reorder_prompt", product=PROMPT.product, s=FORECAST_SUGGESTION, prompt=PROMPT)
    assert_telegram_html(text)
    for shown in EXPECTED[locale]:
        assert shown in text, shown


def test_a_transfer_button_is_what_the_plan_handler_parses() -> None:
    parsed = PlanAction.unpack(transfer_data(TRANSFER_LINE))
    assert parsed == PlanAction(action="t", product_id=1, source_id=3, target_id=2, qty=20)
