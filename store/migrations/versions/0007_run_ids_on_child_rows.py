"""run ids on credit rows and operations: which sync run inserted or last changed them

project_credit, expense_credit and operation get first_run_id and last_run_id, as the other
portal rows have, so that a reconciliation judges only the subjects a sync touched since the last
run (reconcile/changes.py). Columns only, nullable, no constraint (as in 0003: no table is copied on
SQLite); existing rows keep NULL, which marks them as written before any run to come.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 01:45:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

TABLES = ('project_credit', 'expense_credit', 'operation')


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column('first_run_id', sa.Integer(), nullable=True))
        op.add_column(table, sa.Column('last_run_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('last_run_id')
            batch.drop_column('first_run_id')
