"""Runs started by a dataset's change

Revision ID: 0009_triggers
Revises: 0008_attempts
Create Date: 2026-12-06 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_triggers"
down_revision = "0008_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipelines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trigger", sa.JSON(), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trigger_changes", sa.JSON(), nullable=True))
    op.create_table(
        "trigger_heads",
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("seen_commit", sa.String(length=64), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fired_commit", sa.String(length=64), nullable=True),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("pipeline", "dataset"),
    )


def downgrade() -> None:
    op.drop_table("trigger_heads")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("trigger_changes")
    with op.batch_alter_table("pipelines", schema=None) as batch_op:
        batch_op.drop_column("trigger")
