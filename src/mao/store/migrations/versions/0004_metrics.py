"""Control metrics: each step's metric values, and the suspect flag of a step run

Revision ID: 0004_metrics
Revises: 0003_offline
Create Date: 2026-11-28 09:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_metrics"
down_revision = "0003_offline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("slot", sa.String(length=32), nullable=True),
        sa.Column("series_key", sa.String(length=32), nullable=False),
        sa.Column("suspect", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("metric_values", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_metric_values_run_id"), ["run_id"], unique=False)
        batch_op.create_index("ix_metric_values_series", ["pipeline", "step", "metric", "series_key"], unique=False)
    with op.batch_alter_table("step_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suspect", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("suspect_detail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("step_runs", schema=None) as batch_op:
        batch_op.drop_column("suspect_detail")
        batch_op.drop_column("suspect")
    with op.batch_alter_table("metric_values", schema=None) as batch_op:
        batch_op.drop_index("ix_metric_values_series")
        batch_op.drop_index(batch_op.f("ix_metric_values_run_id"))
    op.drop_table("metric_values")
