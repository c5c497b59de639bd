"""Offline mode: last-known registry definitions and the deferred federation work queue

Revision ID: 0003_offline
Revises: 0002_agreement
Create Date: 2026-11-28 06:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_offline"
down_revision = "0002_agreement"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_cache",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name"),
    )
    op.create_table(
        "federation_queue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("step_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("federation_queue", schema=None) as batch_op:
        batch_op.create_index("ix_federation_queue_pending", ["done_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_federation_queue_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("federation_queue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_federation_queue_run_id"))
        batch_op.drop_index("ix_federation_queue_pending")
    op.drop_table("federation_queue")
    op.drop_table("registry_cache")
