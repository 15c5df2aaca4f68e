"""first hour, second pass: usernames seen (for /grant @name) and the bot's own username

Revision ID: 0016_first_hour_two
Revises: 0012_fault_tolerance
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_first_hour_two"
down_revision: str | None = "0014_holdout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("telegram_users", sa.Column("username", sa.String(length=64), nullable=True))
    op.create_index("ix_telegram_users_username", "telegram_users", ["username"])
    op.create_table(
        "bot_identity",
        sa.Column("bot_id", sa.BigInteger(), primary_key=True),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bot_identity")
    op.drop_index("ix_telegram_users_username", table_name="telegram_users")
    with op.batch_alter_table("telegram_users") as batch:
        batch.drop_column("username")
