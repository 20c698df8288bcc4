"""The failure class of a trial (nas_trials.failure, nas.failures): why it ended without values.

Trials stored before it get the class their state and error text imply (the prefixes nas wrote:
"lost:", "cancelled:", "abandoned:", "training diverged", "out of memory"; any other FAIL is
"error").

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# (state, error LIKE pattern or None for any, class): the first match wins, in this order.
_BACKFILL = (
    ("INFEASIBLE", "out of memory%", "oom"),
    ("FAIL", "lost:%", "lost"),
    ("FAIL", "cancelled:%", "cancelled"),
    ("FAIL", "abandoned:%", "abandoned"),
    ("FAIL", "training diverged%", "diverged"),
    ("FAIL", "TrialDiverged%", "diverged"),
    ("FAIL", None, "error"),
)


def upgrade() -> None:
    with op.batch_alter_table("nas_trials") as batch:
        batch.add_column(sa.Column("failure", sa.String(16), nullable=True))
    trials = sa.table("nas_trials", sa.column("state", sa.String), sa.column("error", sa.Text),
                      sa.column("failure", sa.String))
    for state, pattern, failure in _BACKFILL:
        where = [trials.c.state == state, trials.c.failure.is_(None)]
        if pattern is not None:
            where.append(trials.c.error.like(pattern))
        op.execute(trials.update().where(*where).values(failure=failure))


def downgrade() -> None:
    with op.batch_alter_table("nas_trials") as batch:
        batch.drop_column("failure")
