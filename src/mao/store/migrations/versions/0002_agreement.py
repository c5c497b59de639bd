"""Agreement: the slot a run belongs to

Revision ID: 0002_agreement
Revises: 0001
Create Date: 2026-11-28 06:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_agreement"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slot", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_runs_slot"), ["slot"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_slot"))
        batch_op.drop_column("slot")
