"""Each attempt of a retried step

Revision ID: 0008_attempts
Revises: 0007_placement
Create Date: 2026-12-06 19:30:00
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0008_attempts"
down_revision = "0007_placement"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
