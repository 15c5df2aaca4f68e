"""Recovery's reactions to stock events (filled in by the recovery work)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.events import Reaction
from bot.models import StockEventKind

RECOVERY_REACTIONS: dict[StockEventKind, Sequence[Reaction]] = {}
