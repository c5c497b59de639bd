"""Each attempt of a retried step

Revision ID: 0008_attempts
Revises: 0007_placement
Create Date: 2026-12-06 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_attempts"
down_revision = "0007_placement"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float(precision=53), nullable=False),
        sa.Column("retry_delay_s", sa.Float(precision=53), nullable=True),
        sa.ForeignKeyConstraint(["step_id"], ["step_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("step_id", "number", name="uq_step_attempts_step_number"),
    )
    op.create_index(op.f("ix_step_attempts_step_id"), "step_attempts", ["step_id"], unique=False)
    with op.batch_alter_table("log_lines") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("log_lines") as batch:
        batch.drop_column("attempt")
    op.drop_index(op.f("ix_step_attempts_step_id"), table_name="step_attempts")
    op.drop_table("step_attempts")
