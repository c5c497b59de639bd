"""Where the engine placed each step

Revision ID: 0007_placement
Revises: 0006_fire_counts
Create Date: 2026-12-06 19:30:00
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0007_placement"
down_revision = "0006_fire_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
