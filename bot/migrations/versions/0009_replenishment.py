"""replenishment: policies, transfers, purchase orders (lead-time samples), planning markers

Revision ID: 0009_replenishment
Revises: 0008_first_hour
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009_replenishment'
down_revision: str | None = "0008_first_hour"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('planning_state',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_planning_state'))
    )
    op.create_table('cover_warnings',
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_cover_warnings_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('product_id', name=op.f('pk_cover_warnings'))
    )
    op.create_table('planning_dirty',
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('marked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_planning_dirty_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('product_id', name=op.f('pk_planning_dirty'))
    )
    op.create_table('replenishment_policies',
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=False),
    sa.Column('abc', sa.String(length=1), nullable=False),
    sa.Column('lead_time_days', sa.Float(), nullable=False),
    sa.Column('safety_stock', sa.Float(), nullable=False),
    sa.Column('reorder_point', sa.Float(), nullable=False),
    sa.Column('order_up_to', sa.Float(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_replenishment_policies_product_id_products'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouses.id'], name=op.f('fk_replenishment_policies_warehouse_id_warehouses')),
    sa.PrimaryKeyConstraint('product_id', 'warehouse_id', name=op.f('pk_replenishment_policies'))
    )
    op.create_table('stock_transfers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('qty', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('qty > 0', name=op.f('ck_stock_transfers_qty_positive')),
    sa.CheckConstraint('source_id <> target_id', name=op.f('ck_stock_transfers_two_warehouses')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_stock_transfers_product_id_products'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_id'], ['warehouses.id'], name=op.f('fk_stock_transfers_source_id_warehouses')),
    sa.ForeignKeyConstraint(['target_id'], ['warehouses.id'], name=op.f('fk_stock_transfers_target_id_warehouses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_transfers'))
    )
    with op.batch_alter_table('stock_transfers', schema=None) as batch_op:
        batch_op.create_index('ix_stock_transfers_product_status', ['product_id', 'status'], unique=False)

    op.create_table('purchase_orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=False),
    sa.Column('supplier', sa.String(length=256), nullable=True),
    sa.Column('qty', sa.Integer(), nullable=False),
    sa.Column('ordered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('eta', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('prompt_id', sa.Integer(), nullable=True),
    sa.Column('ordered_by', sa.BigInteger(), nullable=True),
    sa.CheckConstraint('qty > 0', name=op.f('ck_purchase_orders_qty_positive')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_purchase_orders_product_id_products'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['prompt_id'], ['reorder_prompts.id'], name=op.f('fk_purchase_orders_prompt_id_reorder_prompts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouses.id'], name=op.f('fk_purchase_orders_warehouse_id_warehouses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_purchase_orders'))
    )
    with op.batch_alter_table('purchase_orders', schema=None) as batch_op:
        batch_op.create_index('ix_purchase_orders_open', ['product_id', 'warehouse_id', 'received_at'], unique=False)
        batch_op.create_index('ix_purchase_orders_supplier', ['supplier', 'received_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('purchase_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_purchase_orders_supplier')
        batch_op.drop_index('ix_purchase_orders_open')

    op.drop_table('purchase_orders')
    with op.batch_alter_table('stock_transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_stock_transfers_product_status')

    op.drop_table('stock_transfers')
    op.drop_table('replenishment_policies')
    op.drop_table('planning_dirty')
    op.drop_table('cover_warnings')
    op.drop_table('planning_state')
