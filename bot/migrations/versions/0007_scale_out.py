"""scale-out: a shared send budget and the indexes a per-chat ordered claim needs

Revision ID: 0007_scale_out
Revises: 0006_reports
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_scale_out"
down_revision: str | None = "0006_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_gates",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_send_gates")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_chat_state", ["chat_id", "state", "id"], unique=False)
        batch_op.create_index("ix_notifications_chat_sent", ["chat_id", "sent_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_chat_sent")
        batch_op.drop_index("ix_notifications_chat_state")
    op.drop_table("send_gates")
