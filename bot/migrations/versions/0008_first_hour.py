"""first hour: invite tokens expire

Revision ID: 0008_first_hour
Revises: 0007_scale_out
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_first_hour"
down_revision: str | None = "0007_scale_out"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_TTL_DAYS = 30  # the INVITE_TTL_DAYS default: tokens issued before expiry existed get it too


def upgrade() -> None:
    op.add_column("invite_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"UPDATE invite_tokens SET expires_at = datetime(created_at, '+{LEGACY_TTL_DAYS} days')")
    else:
        op.execute(f"UPDATE invite_tokens SET expires_at = created_at + interval '{LEGACY_TTL_DAYS} days'")


def downgrade() -> None:
    with op.batch_alter_table("invite_tokens") as batch:
        batch.drop_column("expires_at")
