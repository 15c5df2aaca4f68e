"""fault tolerance: messages an outage of the Bot API failed are sent after all

Before this version the sender gave up on a server or network error after six tries (about a
minute into an outage) and kept the message as failed for good. Those rows are queued again; a
refusal by Telegram itself (bad request, blocked) stays failed. Their errors tell them apart: the
sender stored transient ones as aiogram's "Telegram server says - ..." (a 5xx) or "HTTP Client
says - ..." (the network), and a timeout by its name; refusals as Telegram's own "Bad Request: ...".
Only the last week's: older news (a restock long over) would confuse more than it helps, and an
admin can still resend it (`stockbot failed --resend`).

Revision ID: 0012_fault_tolerance
Revises: 0010_movement_kind
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0012_fault_tolerance"
down_revision: str | None = "0011_first_day"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECENT = timedelta(days=7)


def upgrade() -> None:
    now = datetime.now(UTC)
    # Typed columns, so the times are bound as each dialect stores them (SQLite keeps text).
    notifications = sa.table(
        "notifications", sa.column("state", sa.String), sa.column("last_error", sa.Text),
        sa.column("created_at", sa.DateTime(timezone=True)), sa.column("not_before", sa.DateTime(timezone=True)),
        sa.column("lease_until", sa.DateTime(timezone=True)),
    )
    error = notifications.c.last_error
    transient = sa.or_(error.like("Telegram server says - %"), error.like("HTTP Client says - %"),
                       error == "TimeoutError")
    op.execute(
        notifications.update()
        .where(notifications.c.state == "failed", notifications.c.created_at >= now - RECENT, transient)
        .values(state="pending", not_before=now, lease_until=None)
    )


def downgrade() -> None:
    pass  # the rows were sent or are still queued; nothing to take back
