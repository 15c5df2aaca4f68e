"""movement kind: a count is told apart from a decrease whatever reason the caller gave

Revision ID: 0010_movement_kind
Revises: 0009_replenishment
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_movement_kind"
down_revision: str | None = "0009_replenishment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("stock_movements", sa.Column("kind", sa.String(length=8), server_default="delta", nullable=False))
    # The old ledger kept only the reason: the default ones are all that tells a count apart. A
    # count stored under another reason cannot be recovered and stays a decrease.
    op.execute("UPDATE stock_movements SET kind = 'count' WHERE reason IN ('count', 'import')")


def downgrade() -> None:
    with op.batch_alter_table("stock_movements") as batch:
        batch.drop_column("kind")
