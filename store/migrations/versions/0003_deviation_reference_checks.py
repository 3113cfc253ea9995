"""deviations keep their references to runs and counties without per-row foreign key checks

A reconciliation's first run opens hundreds of thousands of deviations, each with an ``opened``
event. Every foreign key is a lookup per row (on PostgreSQL a trigger with a row lock on the parent):
the four below cost about a fifth of a 100,000-project first run on PostgreSQL. Their parents are
rows nothing ever deletes (sync runs, reconciliation runs, counties), and the only writer of these
columns, reconcile/lifecycle.py, takes their values from the run itself or from rows it read in the
same snapshot (tests/reconcile/test_parallel.py checks every reference after a run). The
key that matters, deviation_event.deviation_id, stays.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 17:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

DROPPED = {  # table -> {column: referred table}
    "deviation": {"county_id": "county", "reconcile_run_id": "reconcile_run", "sync_run_id": "sync_run"},
    "deviation_event": {"reconcile_run_id": "reconcile_run"},
}
# SQLite keeps foreign keys unnamed: batch mode rebuilds the table, naming them by this convention
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def upgrade() -> None:
    bind = op.get_bind()
    for table, columns in DROPPED.items():
        if bind.dialect.name == "sqlite":
            with op.batch_alter_table(table, naming_convention=NAMING) as batch_op:
                for column, referred in columns.items():
                    batch_op.drop_constraint(f"fk_{table}_{column}_{referred}", type_="foreignkey")
            continue
        for key in sa.inspect(bind).get_foreign_keys(table):
            if key["constrained_columns"] in ([c] for c in columns):
                op.drop_constraint(key["name"], table, type_="foreignkey")


def downgrade() -> None:
    # the names the keys had: PostgreSQL's defaults, SQLite's by NAMING (it shows them unnamed)
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, columns in DROPPED.items():
        with op.batch_alter_table(table, naming_convention=NAMING) as batch_op:
            for column, referred in columns.items():
                name = f"{table}_{column}_fkey" if postgresql else f"fk_{table}_{column}_{referred}"
                batch_op.create_foreign_key(name, referred, [column], ["id"])
