"""Files users send, downloaded with a cap on what is actually received.

A document's `file_size` is optional in the Bot API, and a self-hosted Bot API server serves files
far larger than Telegram's 20 MB: the size a message claims (or leaves out) is no limit. The
bytes are counted as they arrive, and the download stops as soon as they pass the cap.
"""

from __future__ import annotations

from typing import BinaryIO

from aiogram import Bot
from aiogram.types import Document


class TooLarge(Exception):
    """The file passed the cap; what was written of it is incomplete."""


class _CappedWriter:
    """Writes through to `destination` until more than `limit` bytes came."""

    def __init__(self, destination: BinaryIO, limit: int) -> None:
        self.destination = destination
        self.limit = limit
        self.written = 0

    def write(self, chunk: bytes) -> int:
        self.written += len(chunk)
        if self.written > self.limit:
            raise TooLarge(f"more than {self.limit} bytes")
        return self.destination.write(chunk)

    def flush(self) -> None:
        self.destination.flush()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.destination.seek(offset, whence)


async def download_capped(bot: Bot, document: Document, destination: BinaryIO, limit: int) -> bool:
    """Download `document` into `destination`; False (and the rest not fetched) past `limit`."""
    if (document.file_size or 0) > limit:
        return False
    try:
        await bot.download(document, destination=_CappedWriter(destination, limit))  # type: ignore[arg-type]
    except TooLarge:
        return False
    return True
