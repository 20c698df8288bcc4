"""What the strategy decided for each trial, so nas's tables alone can rebuild it on resume:
nas_trials.decisions (decision name -> value, as the space's graph asked them),
nas_trials.strategy_state (the strategy's own JSON per-trial state, e.g. NSGA-II's generation)
and nas_trials.retrain_of (the trial whose configuration this one trains again).

Rows stored before it have NULL there; `nas resume` fills them from the run's Optuna study.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nas_trials") as batch:
        batch.add_column(sa.Column("decisions", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("strategy_state", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("retrain_of", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nas_trials") as batch:
        batch.drop_column("retrain_of")
        batch.drop_column("strategy_state")
        batch.drop_column("decisions")
