"""Trained weights kept as files (nas_artifacts); trials count their retries.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nas_artifacts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trial_id", sa.Integer(),
                  sa.ForeignKey("nas_trials.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("trial_id", "kind"),
    )
    op.create_index("ix_nas_artifacts_trial_id", "nas_artifacts", ["trial_id"])
    with op.batch_alter_table("nas_trials") as batch:
        batch.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("nas_trials") as batch:
        batch.drop_column("retries")
    op.drop_table("nas_artifacts")
