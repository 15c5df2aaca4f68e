"""event pipeline at scale: event lanes and leases, catalog versions, sender claim owner

Revision ID: 0003_event_pipeline
Revises: 0002_planning
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_event_pipeline"
down_revision: str | None = "0002_planning"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CUSTOMER_FACING = ("out_of_stock", "order_short", "back_in_stock")


def upgrade() -> None:
    op.create_table(
        "catalog_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_version")),
    )
    op.execute("INSERT INTO catalog_version (id, value) VALUES (1, 0)")
    op.create_table(
        "event_leases",
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_event_leases")),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("catalog_version", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.create_index(batch_op.f("ix_products_catalog_version"), ["catalog_version"], unique=False)
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.alter_column("catalog_version", server_default=None)
    with op.batch_alter_table("stock_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lane", sa.SmallInteger(), nullable=False, server_default="1"))
        batch_op.drop_index("ix_stock_events_pending")
    kinds = ", ".join(f"'{kind}'" for kind in CUSTOMER_FACING)
    op.execute(f"UPDATE stock_events SET lane = 0 WHERE kind IN ({kinds})")
    with op.batch_alter_table("stock_events", schema=None) as batch_op:
        batch_op.alter_column("lane", server_default=None)
        batch_op.create_index("ix_stock_events_pending", ["processed_at", "lane", "id"], unique=False)
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("claimed_by")
    with op.batch_alter_table("stock_events", schema=None) as batch_op:
        batch_op.drop_index("ix_stock_events_pending")
        batch_op.drop_column("lane")
        batch_op.create_index("ix_stock_events_pending", ["processed_at", "id"], unique=False)
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_products_catalog_version"))
        batch_op.drop_column("catalog_version")
    op.drop_table("event_leases")
    op.drop_table("catalog_version")
