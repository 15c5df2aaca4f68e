"""holdout: which stockout offers took part in the control-group draw

Revision ID: 0014_holdout
Revises: 0013_replay_guard
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_holdout"
down_revision: str | None = "0012_fault_tolerance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Offers made before this revision were never drawn: they stay out of the comparison.
    op.add_column("stockout_offers", sa.Column("randomised", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("stockout_offers") as batch:
        batch.drop_column("randomised")
