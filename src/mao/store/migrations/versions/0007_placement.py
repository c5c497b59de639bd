"""Where the engine placed each step

Revision ID: 0007_placement
Revises: 0006_fire_counts
Create Date: 2026-12-06 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_placement"
down_revision = "0006_fire_counts"
branch_labels = None
depends_on = None


COLUMNS = (("executor", 32), ("node", 255), ("job", 255), ("placement", 16))


def upgrade() -> None:
    with op.batch_alter_table("step_runs") as batch:
        for name, length in COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length=length), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("step_runs") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
