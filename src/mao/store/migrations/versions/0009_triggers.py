"""Runs started by a dataset's change

Revision ID: 0009_triggers
Revises: 0008_attempts
Create Date: 2026-12-06 19:30:00
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0009_triggers"
down_revision = "0008_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
