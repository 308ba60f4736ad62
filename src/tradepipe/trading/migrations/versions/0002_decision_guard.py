"""Decisions record the OOD guard: the bar's score and what the guard did (null: let through).

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:  # batch: SQLite cannot ALTER every column kind in place
        batch.add_column(sa.Column("ood_score", sa.Float, nullable=True))
        batch.add_column(sa.Column("guard", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("guard")
        batch.drop_column("ood_score")
