"""demand planning: sales history and forecasts

Revision ID: 0002_planning
Revises: 0001
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_planning"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sales_history",
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("warehouse_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sold", sa.Integer(), nullable=False),
        sa.Column("on_hand", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.CheckConstraint("sold >= 0", name=op.f("ck_sales_history_sold_not_negative")),
        sa.CheckConstraint("on_hand IS NULL OR on_hand >= 0", name=op.f("ck_sales_history_on_hand_not_negative")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_sales_history_product_id_products"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"], name=op.f("fk_sales_history_warehouse_id_warehouses")),
        sa.PrimaryKeyConstraint("product_id", "warehouse_id", "day", name=op.f("pk_sales_history")),
    )
    with op.batch_alter_table("sales_history", schema=None) as batch_op:
        batch_op.create_index("ix_sales_history_day", ["day"], unique=False)
    op.create_table(
        "demand_forecasts",
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("warehouse_id", sa.Integer(), nullable=False),
        sa.Column("daily_demand", sa.Float(), nullable=False),
        sa.Column("demand_class", sa.String(length=16), nullable=False),
        sa.Column("days_of_cover", sa.Float(), nullable=True),
        sa.Column("stockout_date", sa.Date(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_demand_forecasts_product_id_products"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"],
                                name=op.f("fk_demand_forecasts_warehouse_id_warehouses")),
        sa.PrimaryKeyConstraint("product_id", "warehouse_id", name=op.f("pk_demand_forecasts")),
    )


def downgrade() -> None:
    op.drop_table("demand_forecasts")
    with op.batch_alter_table("sales_history", schema=None) as batch_op:
        batch_op.drop_index("ix_sales_history_day")
    op.drop_table("sales_history")
