"""The latency cache (nas_latency): measurements by architecture, device fingerprint and shape;
the distinct architectures with their analytic costs (nas_architectures).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nas_latency",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("arch_hash", sa.String(64), nullable=False),
        sa.Column("fingerprint_hash", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.JSON(), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("seq_len", sa.Integer(), nullable=False),
        sa.Column("median_ms", sa.Float(), nullable=False),
        sa.Column("spread", sa.Float(), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("measured_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("arch_hash", "fingerprint_hash", "phase", "batch", "seq_len"),
    )
    op.create_index("ix_nas_latency_arch_hash", "nas_latency", ["arch_hash"])
    op.create_table(
        "nas_architectures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("arch_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("short_form", sa.String(255), nullable=False),
        sa.Column("params", sa.BigInteger(), nullable=False),
        sa.Column("seq_len", sa.Integer(), nullable=False),
        sa.Column("flops_per_token", sa.Float(), nullable=False),
        sa.Column("state_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("nas_architectures")
    op.drop_table("nas_latency")
