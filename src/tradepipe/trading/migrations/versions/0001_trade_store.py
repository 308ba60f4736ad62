"""The trade store: accounts, decisions, orders, fills, positions, equity per bar, events.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("initial_cash", sa.Float, nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("symbols", sa.JSON, nullable=False),
        sa.Column("anchor", STAMP, nullable=False),
        sa.Column("first_bar", STAMP, nullable=False),
        sa.Column("broker", sa.String(32), nullable=False),
        sa.Column("halted", sa.Boolean, nullable=False),
        sa.Column("pending_version", sa.Integer, nullable=True),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), sa.ForeignKey("accounts.name"), nullable=False),
        sa.Column("bar", STAMP, nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("proposed", sa.JSON, nullable=False),
        sa.Column("target", sa.JSON, nullable=False),
        sa.Column("risk_state", sa.JSON, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.UniqueConstraint("account", "bar", name="uq_decision_bar"),
    )
    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.String(200), primary_key=True),
        sa.Column("account", sa.String(64), sa.ForeignKey("accounts.name"), nullable=False),
        sa.Column("decision_id", sa.Integer, sa.ForeignKey("decisions.id"), nullable=False),
        sa.Column("bar", STAMP, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("qty", sa.Float, nullable=False),
        sa.Column("price", sa.Float, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("created_at", STAMP, nullable=False),
    )
    op.create_table(
        "fills",
        sa.Column("broker_fill_id", sa.String(200), primary_key=True),
        sa.Column("account", sa.String(64), sa.ForeignKey("accounts.name"), nullable=False),
        sa.Column("client_order_id", sa.String(200), sa.ForeignKey("orders.client_order_id"), nullable=False),
        sa.Column("bar", STAMP, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("qty", sa.Float, nullable=False),
        sa.Column("price", sa.Float, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
    )
    op.create_table(
        "positions",
        sa.Column("account", sa.String(64), sa.ForeignKey("accounts.name"), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("qty", sa.Float, nullable=False),
    )
    op.create_table(
        "equity",
        sa.Column("account", sa.String(64), sa.ForeignKey("accounts.name"), primary_key=True),
        sa.Column("bar", STAMP, primary_key=True),
        sa.Column("cash", sa.Float, nullable=False),
        sa.Column("equity", sa.Float, nullable=False),
        sa.Column("gross_exposure", sa.Float, nullable=False),
        sa.Column("turnover", sa.Float, nullable=False),
        sa.Column("costs", sa.Float, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), sa.ForeignKey("accounts.name"), nullable=False),
        sa.Column("bar", STAMP, nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("rule", sa.String(60), nullable=True),
        sa.Column("symbol", sa.String(64), nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
    )


def downgrade() -> None:
    for table in ("events", "equity", "positions", "fills", "orders", "decisions", "accounts"):
        op.drop_table(table)
