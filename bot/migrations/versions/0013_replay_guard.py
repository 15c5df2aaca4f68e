"""replay guard: request signatures and Telegram update_ids accepted once, by all processes

Revision ID: 0013_replay_guard
Revises: 0010_movement_kind
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_replay_guard"
down_revision: str | None = "0010_movement_kind"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seen_once",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_seen_once")),
    )
    op.create_index(op.f("ix_seen_once_expires_at"), "seen_once", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_seen_once_expires_at"), table_name="seen_once")
    op.drop_table("seen_once")
