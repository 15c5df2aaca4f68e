"""`stockbot held`: the batches of customer messages waiting for an admin's Send or Discard."""

from __future__ import annotations

import argparse

from bot.cli_db import read_once
from bot.models import ContactBatch
from bot.settings import Settings

HEADER = "id\tcause\tcustomers\tproducts\tsince"


def held_lines(batches: list[ContactBatch]) -> list[str]:
    """One tab-separated line per batch; a cause is one line of text whatever its file name."""
    rows = [HEADER]
    for batch in batches:
        cause = " ".join(batch.cause.split())
        since = (batch.closed_at or batch.created_at).isoformat(timespec="seconds")
        rows.append(f"{batch.id}\t{cause}\t{batch.customers}\t{batch.products}\t{since}")
    return rows


async def held(settings: Settings, _: argparse.Namespace) -> int:
    from bot.recovery.hold import held_batches  # deferred (CLI start path)

    batches = await read_once(settings, held_batches)
    if not batches:
        print("no batch is held")
        return 0
    print("\n".join(held_lines(batches)))
    return 0
