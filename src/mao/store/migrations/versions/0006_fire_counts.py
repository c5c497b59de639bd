"""Scheduler fire counts, kept across restarts

Revision ID: 0006_fire_counts
Revises: 0005_gateway
Create Date: 2026-12-06 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_fire_counts"
down_revision = "0005_gateway"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule_fire_counts",
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("last_skip", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pipeline"),
    )


def downgrade() -> None:
    op.drop_table("schedule_fire_counts")
