"""`stockbot play`: start the bot on the seeded demo shop (or a given database) and serve the page."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from aiohttp import web

from bot.db import create_database
from bot.demo import seed_shop
from bot.migrate import upgrade
from bot.play.people import PURCHASER_ID, SALES_ID, Person, cast_of, seeded_cast
from bot.play.web import create_play_app
from bot.play.world import Play, playing
from bot.startup import open_database
from bot.sandbox import BotApiSandbox
from bot.settings import Settings, SettingsError, load_settings

HOST = "127.0.0.1"  # the page acts as anyone, admin included: never on another interface
DEFAULT_ADMIN_ID = 1
SANDBOX_TOKEN = BotApiSandbox().token  # the bot talks only to the sandbox, whatever BOT_TOKEN says


@asynccontextmanager
async def seeded_play(locale: str) -> AsyncIterator[Play]:
    """The demo's shop (bot/demo.py) on a temporary SQLite file, its people already introduced."""
    with tempfile.TemporaryDirectory(prefix="stockbot-play-") as folder:
        settings = load_settings(
            _env_file=None, DATABASE_URL=f"sqlite+aiosqlite:///{Path(folder) / 'play.db'}", BOT_TOKEN=SANDBOX_TOKEN,
            ADMIN_IDS=str(DEFAULT_ADMIN_ID), QUIET_HOURS="", DEFAULT_LOCALE=locale,
        )
        db = create_database(settings)
        try:
            await upgrade(db)
            tokens = await seed_shop(db)
            people = seeded_cast(locale)

            async def introduce(play: Play) -> None:
                await introduce_staff(play)
                ann, lina, max_ = people[3:]
                await _say(play, ann, f"/start {tokens['C-ANN']}")
                await _say(play, max_, f"/start {tokens['C-MAX']}")
                await _say(play, lina, "/start")  # 李娜 links by sharing her phone, and waits for a gloss
                await play.conversation.act(play.sandbox.send_contact(lina.user_id, "8613900139000",
                                                                      first_name=lina.first_name))
                await _say(play, lina, "/notify 唇釉 正红色")

            async with playing(settings, db, people, setup=introduce) as play:
                yield play
        finally:
            await db.dispose()


@asynccontextmanager
async def database_play(settings: Settings, locale: str | None) -> AsyncIterator[Play]:
    """Your own database: an admin, a purchaser and a sales rep played by the page, and its linked customers."""
    admin_id = min(settings.ADMIN_IDS, default=DEFAULT_ADMIN_ID)
    settings = load_settings(
        DATABASE_URL=settings.DATABASE_URL, BOT_TOKEN=SANDBOX_TOKEN, QUIET_HOURS="",
        ADMIN_IDS=",".join(str(i) for i in settings.ADMIN_IDS | {admin_id}),
        DEFAULT_LOCALE=locale or settings.DEFAULT_LOCALE,
    )
    db = await open_database(settings)
    try:
        people = await cast_of(db, admin_id, settings.DEFAULT_LOCALE)
        async with playing(settings, db, people, setup=introduce_staff) as play:
            yield play
    finally:
        await db.dispose()


async def introduce_staff(play: Play) -> None:
    admin, purchaser, sales = play.people[:3]
    await _say(play, admin, "/start")
    await _say(play, admin, f"/grant {PURCHASER_ID} purchaser")
    await _say(play, admin, f"/grant {SALES_ID} sales")
    await _say(play, purchaser, "/start")
    await _say(play, sales, "/start")


async def _say(play: Play, person: Person, text: str) -> None:
    await play.conversation.say(person.user_id, text, first_name=person.first_name, language_code=person.language)


def bind_page_socket(port: int) -> socket.socket:
    """The page's socket, bound before anything starts: a port in use is one clear line at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        problem = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used: {exc.strerror or exc}"
        raise SettingsError("--port", f"{HOST}:{port} {problem}") from None
    return sock


async def serve_page(play: Play, sock: socket.socket, running: AsyncExitStack) -> str:
    runner = web.AppRunner(create_play_app(play), handle_signals=False, access_log=None, shutdown_timeout=2)
    await runner.setup()
    running.push_async_callback(runner.cleanup)
    await web.SockSite(runner, sock).start()
    host, bound = sock.getsockname()[:2]
    return f"http://{host}:{bound}/"


async def run_play(settings: Settings, *, port: int, locale: str | None, database_url: str | None) -> int:
    for chatty in ("apscheduler", "aiogram.event", "aiogram.dispatcher"):  # the page shows what they would say
        logging.getLogger(chatty).setLevel(logging.WARNING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sock = bind_page_socket(port)
    if database_url:
        world = database_play(settings.model_copy(update={"DATABASE_URL": database_url}), locale)
    else:
        world = seeded_play(locale or "en")
    print("Stockbot play: starting the bot on the built-in Bot API sandbox ...", flush=True)
    with sock:
        async with AsyncExitStack() as running:
            play = await running.enter_async_context(world)
            url = await serve_page(play, sock, running)
            print(f"Stockbot play: open {url} (Ctrl+C stops it)", flush=True)
            await stop.wait()
    return 0
