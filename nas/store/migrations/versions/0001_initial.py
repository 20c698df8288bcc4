"""The first schema: runs, trials, curves, the budget ledger (nas 0.1, before migrations).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nas_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("space_path", sa.Text(), nullable=False),
        sa.Column("space_text", sa.Text(), nullable=False),
        sa.Column("space_hash", sa.String(64), nullable=False),
        sa.Column("objectives", sa.JSON(), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("budget", sa.String(64), nullable=False),
        sa.Column("budget_unit", sa.String(16), nullable=False),
        sa.Column("budget_amount", sa.Float(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("driver_pid", sa.Integer()),
        sa.Column("elapsed_seconds", sa.Float(), nullable=False),
        sa.Column("message", sa.Text()),
    )
    op.create_table(
        "nas_trials",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("nas_runs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("arch_hash", sa.String(32), nullable=False),
        sa.Column("config_hash", sa.String(32), nullable=False),
        sa.Column("short_form", sa.String(255), nullable=False),
        sa.Column("d_model", sa.Integer(), nullable=False),
        sa.Column("n_layers", sa.Integer(), nullable=False),
        sa.Column("params", sa.Integer()),
        sa.Column("values", sa.JSON()),
        sa.Column("metrics", sa.JSON()),
        sa.Column("pareto", sa.Boolean(), nullable=False),
        sa.Column("device", sa.String(255)),
        sa.Column("worker", sa.String(64)),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("device_seconds", sa.Float(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("duplicate_of", sa.Integer()),
        sa.UniqueConstraint("run_id", "number"),
    )
    op.create_index("ix_nas_trials_run_id", "nas_trials", ["run_id"])
    op.create_index("ix_nas_trials_arch_hash", "nas_trials", ["arch_hash"])
    op.create_index("ix_nas_trials_config_hash", "nas_trials", ["config_hash"])
    op.create_table(
        "nas_metrics",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trial_id", sa.Integer(),
                  sa.ForeignKey("nas_trials.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
    )
    op.create_index("ix_nas_metrics_trial_id", "nas_metrics", ["trial_id"])
    op.create_table(
        "nas_budget_ledger",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("nas_runs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("trial_number", sa.Integer()),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("device_seconds", sa.Float(), nullable=False),
        sa.Column("wall_seconds", sa.Float(), nullable=False),
        sa.Column("note", sa.String(64), nullable=False),
    )
    op.create_index("ix_nas_budget_ledger_run_id", "nas_budget_ledger", ["run_id"])


def downgrade() -> None:
    for table in ("nas_budget_ledger", "nas_metrics", "nas_trials", "nas_runs"):
        op.drop_table(table)
