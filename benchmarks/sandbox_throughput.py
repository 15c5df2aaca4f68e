"""How many sendMessage/s the Bot API sandbox sustains, so bot-side benchmarks know it is not their ceiling.

The sandbox runs on its own thread (as in the bot's sending benchmark); the client is
either a real aiogram Bot or bare aiohttp (less client overhead, closer to the
server's own limit). Both share one process and hence the GIL, so this is a floor.

    python benchmarks/sandbox_throughput.py [--messages 5000] [--concurrency 50] [--client aiogram|raw]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bot.sandbox import BotApiSandbox, sandbox_bot


async def _run_aiogram(sandbox: BotApiSandbox, total: int, concurrency: int) -> None:
    bot = sandbox_bot(sandbox)
    try:
        await _fan_out(total, concurrency, lambda i: bot.send_message(1000 + i % 100, f"message {i}"))
    finally:
        await bot.session.close()


async def _run_raw(sandbox: BotApiSandbox, total: int, concurrency: int) -> None:
    url = f"{sandbox.base_url}/bot{sandbox.token}/sendMessage"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def send(i: int) -> None:
            async with http.post(url, data={"chat_id": str(1000 + i % 100), "text": f"message {i}"}) as resp:
                await resp.read()

        await _fan_out(total, concurrency, send)


async def _fan_out(total: int, concurrency: int, send: Callable[[int], Awaitable[Any]]) -> None:
    """A fixed pool of workers, like a bot's sender queue, rather than ``total`` simultaneous tasks."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await send(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--client", choices=("aiogram", "raw"), default="aiogram")
    args = parser.parse_args(argv)

    with BotApiSandbox() as sandbox:
        runner = _run_aiogram if args.client == "aiogram" else _run_raw
        started = time.perf_counter()
        asyncio.run(runner(sandbox, args.messages, args.concurrency))
        elapsed = time.perf_counter() - started
        sent = len(sandbox.calls_to("sendMessage"))
    rate = sent / elapsed
    sys.stdout.write(f"{args.client}: {sent} sendMessage in {elapsed:.2f}s = {rate:,.0f}/s\n")
    return 0 if sent == args.messages else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
