"""first day: a first stock level is a state; import and API batches weighed before they message

Revision ID: 0011_first_day
Revises: 0013_replay_guard
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_first_day"
down_revision: str | None = "0013_replay_guard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("products", sa.Column("stock_seen", sa.Boolean(), server_default=sa.false(), nullable=False))
    # A product with a level or a ledger row has been seen: its next level is a change.
    op.execute(
        "UPDATE products SET stock_seen = true WHERE EXISTS (SELECT 1 FROM stock_levels l WHERE l.product_id = products.id)"
        " OR EXISTS (SELECT 1 FROM stock_movements m WHERE m.product_id = products.id)"
    )
    op.add_column("stock_events", sa.Column("batch_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_stock_events_batch", "stock_events", ["batch_id", "lane", "processed_at", "id"])
    op.create_index("ix_stock_events_product", "stock_events", ["product_id", "id"])
    op.create_table(
        "contact_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cause", sa.String(length=256), nullable=False),
        sa.Column("from_import", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("products", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_batches")),
    )
    op.create_index("ix_contact_batches_status", "contact_batches", ["status"])


def downgrade() -> None:
    op.drop_index("ix_contact_batches_status", table_name="contact_batches")
    op.drop_table("contact_batches")
    op.drop_index("ix_stock_events_product", table_name="stock_events")
    op.drop_index("ix_stock_events_batch", table_name="stock_events")
    with op.batch_alter_table("stock_events") as batch:
        batch.drop_column("batch_id")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("stock_seen")
