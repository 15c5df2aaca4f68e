"""`stockbot play` in a real browser: Chromium, driven by Playwright, on the seeded demo shop.

A newcomer's minute: a stockout sent from the panel, the customer's offer arriving in their chat,
a button pressed and the bot's answer drawn, in English and in Chinese. The browser is Debian's
`chromium` (`.ci/run` installs it); Playwright never downloads one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from bot.demo import ALICE, ANN, LINA
from bot.play.start import bind_page_socket, seeded_play, serve_page
from bot.play.world import Play

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Screenshots are for people to look at (PLAY_SCREENSHOTS=DIR keeps them), never compared.
SCREENSHOTS = os.environ.get("PLAY_SCREENSHOTS")

if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it",
                allow_module_level=True)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def _open(browser: Browser, play: Play, running: AsyncExitStack) -> Page:
    url = await serve_page(play, bind_page_socket(0), running)
    page = await browser.new_page(viewport={"width": 1280, "height": 820})
    page.set_default_timeout(15_000)
    await page.goto(url)
    await page.locator(f'[data-person="{ALICE.user_id}"]').wait_for()
    return page


async def _story(browser: Browser, locale: str, sku: str, customer: int, tmp_path: Path) -> None:
    async with AsyncExitStack() as running:
        play = await running.enter_async_context(seeded_play(locale))
        templates = play.conversation.services.templates
        customer_locale = play.person(customer).language
        page = await _open(browser, play, running)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        # The admin's chat opens first, with what the setup said in the staff's language.
        await page.locator(".msg.user", has_text="/start").first.wait_for()
        await page.locator("#sku").select_option(sku)
        await page.locator("#stockout").click()
        await page.locator("#panel-result:not(.bad)").filter(has_text=sku).wait_for()

        # The customer's entry shows a badge for the offer waiting there; one click opens the chat.
        person = page.locator(f'[data-person="{customer}"]')
        await person.locator(".badge").wait_for()
        await person.click()
        wait_label = templates.plain(customer_locale, "recovery_btn_wait")
        offer = page.locator(".msg.bot").filter(has=page.locator(".keyboard button", has_text=wait_label)).last
        button = offer.locator(".keyboard button", has_text=wait_label)
        await button.wait_for()
        assert await offer.locator("b").count() >= 1, "the offer's HTML formatting is drawn"
        await page.screenshot(path=str(Path(SCREENSHOTS or tmp_path) / f"offer-{locale}.png"))

        await button.click()
        waiting = templates.plain(customer_locale, "recovery_waiting", days=play.conversation.services.settings.WAITLIST_DAYS)
        await page.locator(".msg.bot", has_text=waiting[:12]).last.wait_for()
        await page.screenshot(path=str(Path(SCREENSHOTS or tmp_path) / f"waiting-{locale}.png"))
        assert errors == []


async def test_stockout_offer_and_button_in_english(browser: Browser, tmp_path: Path) -> None:
    await _story(browser, "en", "LIP-RED", ANN.user_id, tmp_path)


async def test_stockout_offer_and_button_in_chinese(browser: Browser, tmp_path: Path) -> None:
    await _story(browser, "zh", "GLOSS-ZHENGHONG", LINA.user_id, tmp_path)


async def test_a_csv_dropped_in_the_admins_chat_is_imported_and_a_report_shows_its_charts(
    browser: Browser, tmp_path: Path
) -> None:
    async with AsyncExitStack() as running:
        play = await running.enter_async_context(seeded_play("en"))
        page = await _open(browser, play, running)
        # What a file dragged from the desktop and let go over the chat does.
        await page.evaluate("""text => {
            const files = new DataTransfer();
            files.items.add(new File([text], "new stock.csv", { type: "text/csv" }));
            for (const kind of ["dragenter", "dragover", "drop"]) {
                const event = new DragEvent(kind, { dataTransfer: files, bubbles: true, cancelable: true });
                document.getElementById("messages").dispatchEvent(event);
            }
        }""", "sku,warehouse,on_hand\nLIP-NUDE,BJ,7\n")
        await page.locator(".msg.user", has_text="new stock.csv").wait_for()
        await page.locator(".msg.bot", has_text="stock.csv").wait_for()  # the import's answer
        await page.locator("#sku").select_option("LIP-NUDE")
        await page.locator("#levels", has_text="BJ: 7").wait_for()

        await page.locator("#text").fill("/report 30")
        await page.locator("#send").click()
        chart = page.locator(".msg.bot img").first
        await chart.wait_for(timeout=60_000)
        assert await chart.evaluate("image => image.complete && image.naturalWidth > 0"), "the chart is drawn"
        await page.screenshot(path=str(Path(SCREENSHOTS or tmp_path) / "report.png"))
        download_link = page.locator(".msg.bot a.file").first
        await download_link.wait_for(timeout=60_000)
        async with page.expect_download() as started:
            await download_link.click()
        download = await started.value
        assert download.suggested_filename.endswith(".csv")


async def test_hostile_text_is_shown_as_text(browser: Browser, tmp_path: Path) -> None:
    async with AsyncExitStack() as running:
        play = await running.enter_async_context(seeded_play("en"))
        page = await _open(browser, play, running)
        hostile = '<img src=x onerror="document.title=\'owned\'"><b>bold?</b>'
        await page.locator("#text").fill(hostile)
        await page.locator("#text").press("Enter")
        await page.locator(".msg.user", has_text=hostile).wait_for()
        assert await page.locator(".msg img").count() == 0
        assert await page.title() == "Stockbot play"
