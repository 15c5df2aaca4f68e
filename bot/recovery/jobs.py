"""Recovery's scheduled jobs: (id, interval in seconds, async job(services))."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.services import Services

RECOVERY_JOBS: list[tuple[str, float, Callable[[Services], Awaitable[object]]]] = []
