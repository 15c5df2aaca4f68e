"""Runs `python -m bot <args>` with hooks that record, per message, when it left the bot.

    python benchmarks/send_probe.py OUT.jsonl run

bench_scale_out.py starts its bot processes through this script so that it can tell where a
burst comes from: the sandbox stamps a request when its handler runs, which a starved sandbox
thread does late and for a backlog at once, while Telegram counts at its edge, when the bytes
arrive. Written here, per sendMessage (time.monotonic(), system-wide on Linux, so comparable
with the sandbox's `ApiCall.at` and across processes):

- "intended": when the database meant the message's slot to begin (its clock is this host's
  wall clock, turned into a monotonic time here), the same instant for every process;
- "slot": when the slot began on this process's clock;
- "acquired": when the gate handed the slot to the sender;
- "written": when the request's first bytes went to the socket (on loopback, in the sandbox's
  receive buffer at once): what Telegram would count.

Per reservation: "started"/"answered" (the round trip); and each slot given up ("given_up").
Nothing in the bot changes: the hooks wrap methods from outside, and only this script installs
them.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import json
import runpy
import sys
import time
from collections import deque
from typing import Any

from aiohttp import http_writer

from bot.delivery import shared_rate, telegram

_records: list[dict[str, Any]] = []
_acquired: contextvars.ContextVar[tuple[float, float | None, float | None]] = contextvars.ContextVar("acquired")
_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("request", default=None)
_last_popped: list[tuple[float | None, float | None]] = [(None, None)]  # (slot, its time by the database)
_last_database_end: list[float] = [0.0]  # of the reservation just answered, as a monotonic time
_intended: dict[float, float] = {}  # a reserved slot's beginning: when the database meant it to begin


def _wall_minus_monotonic() -> float:
    return time.time() - time.monotonic()


class _RecordingSlots(deque):  # type: ignore[type-arg]
    """The gate's slot queue, remembering the slot taken last (the one `acquire` waits for)."""

    def popleft(self) -> shared_rate.Slot:
        slot = super().popleft()
        _last_popped[0] = (slot.at, _intended.pop(slot.at, None))
        return slot


def _wrap_bucket() -> None:
    original_init, original_widen = shared_rate._Bucket.__init__, shared_rate._Bucket.widen
    original_reserved = shared_rate._Bucket.reserved

    @functools.wraps(original_reserved)
    def reserved(self, earliest_end, latest_end, count, width):  # type: ignore[no-untyped-def]
        # Called right after the answer, with nothing awaited since: `_last_database_end` is its.
        slots = original_reserved(self, earliest_end, latest_end, count, width)
        for i, slot in enumerate(slots):
            _intended[slot.at] = _last_database_end[0] - (count - i) * width * self.spacing
        return slots

    @functools.wraps(original_init)
    def init(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[no-untyped-def]
        original_init(self, *args, **kwargs)
        self.slots = _RecordingSlots()

    @functools.wraps(original_widen)
    def widen(self) -> None:  # type: ignore[no-untyped-def]  # a slot given up, when waking or at the write
        _records.append({"given_up": time.monotonic(), "width": self.width})
        original_widen(self)

    shared_rate._Bucket.__init__ = init  # type: ignore[method-assign]
    shared_rate._Bucket.widen = widen  # type: ignore[method-assign]
    shared_rate._Bucket.reserved = reserved  # type: ignore[method-assign]


def _wrap_acquire() -> None:
    original = shared_rate.PostgresRateGate.acquire

    @functools.wraps(original)
    async def acquire(self, *, paid: bool = False) -> None:  # type: ignore[no-untyped-def]
        result = await original(self, paid=paid)
        # The sender creates the sending task right after this returns; it inherits the context.
        _acquired.set((time.monotonic(), *_last_popped[0]))
        return result

    shared_rate.PostgresRateGate.acquire = acquire  # type: ignore[method-assign]


def _wrap_reserve_block() -> None:
    original = shared_rate.PostgresRateGate.reserve_block

    @functools.wraps(original)
    async def reserve_block(self, name, count, slot_spacing):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        reservation = await original(self, name, count, slot_spacing)
        _records.append({"reservation": name, "started": started, "answered": time.monotonic()})
        _last_database_end[0] = reservation.clock + reservation.ahead - _wall_minus_monotonic()
        return reservation

    shared_rate.PostgresRateGate.reserve_block = reserve_block  # type: ignore[method-assign]


def _wrap_send() -> None:
    original = telegram.TelegramTransport.send

    @functools.wraps(original)
    async def send(self, chat_id, text, reply_markup, **kwargs):  # type: ignore[no-untyped-def]
        acquired, slot, intended = _acquired.get((float("nan"), None, None))
        record = {"text": text, "intended": intended, "slot": slot, "acquired": acquired, "called": time.monotonic(),
                  "written": None}
        _request.set(record)
        try:
            return await original(self, chat_id, text, reply_markup, **kwargs)
        finally:
            _records.append(record)

    telegram.TelegramTransport.send = send  # type: ignore[method-assign]


def _stamp_first_write() -> None:
    record = _request.get()
    if record is not None and record["written"] is None:
        record["written"] = time.monotonic()


def _wrap_writer() -> None:
    for name in ("_write", "_writelines"):
        original = getattr(http_writer.StreamWriter, name)

        def write(self, data, _original=original):  # type: ignore[no-untyped-def]
            _stamp_first_write()
            return _original(self, data)

        setattr(http_writer.StreamWriter, name, write)


def _dump(path: str) -> None:
    with open(path, "w") as out:
        for record in _records:
            out.write(json.dumps(record) + "\n")


def load(paths: list[str]) -> tuple[dict[str, dict[str, Any]], list[float], int]:
    """What the bot processes wrote: each message's record by its text; every reservation's round
    trip in seconds; and how many slots were given up."""
    by_text: dict[str, dict[str, Any]] = {}
    round_trips: list[float] = []
    given_up = 0
    for process, path in enumerate(paths):
        for record in (json.loads(line) for line in open(path)):
            if "reservation" in record:
                round_trips.append(record["answered"] - record["started"])
            elif "given_up" in record:
                given_up += 1
            else:  # a message; when one was held back and sent again, its last record is the one that left
                by_text[record["text"]] = {**record, "process": process}
    return by_text, round_trips, given_up


def main() -> None:
    out, *args = sys.argv[1:]
    _wrap_bucket()
    _wrap_acquire()
    _wrap_reserve_block()
    _wrap_send()
    _wrap_writer()
    atexit.register(_dump, out)
    sys.argv = ["bot", *args]
    runpy.run_module("bot", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
