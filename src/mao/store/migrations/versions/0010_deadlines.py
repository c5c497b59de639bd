"""Slot deadlines raised

Revision ID: 0010_deadlines
Revises: 0009_triggers
Create Date: 2026-12-06 19:30:00
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0010_deadlines"
down_revision = "0009_triggers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
