"""reports: files (charts, CSV) carried by an outbox row

Revision ID: 0006_reports
Revises: 0003_event_pipeline
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_reports"
down_revision: str | None = "0003_event_pipeline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_files",
        sa.Column("notification_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["notification_id"], ["notifications.id"],
                                name=op.f("fk_notification_files_notification_id_notifications"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("notification_id", "position", name=op.f("pk_notification_files")),
    )


def downgrade() -> None:
    op.drop_table("notification_files")
