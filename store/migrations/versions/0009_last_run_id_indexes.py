"""indexes on last_run_id of the fact tables: an incremental reconciliation finds what changed by index

An incremental run (reconcile/changes.py, ``plan``) asks seven tables for the rows a sync wrote
since the last recorded run, by ``last_run_id``. Without an index each question read the whole
table: 0.29 s of every run at 100k projects on SQLite when nothing had changed (1.4 million rows),
none with the indexes (docs/benchmarks.md, session 10). Adds indexes only; creating them takes
about a second per 100,000 projects.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 14:45:00
"""
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TABLES = ('project_year', 'project_credit', 'progress_report', 'expense_agreement', 'expense_credit',
          'operation', 'operation_performance')


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f'ix_{table}_last_run_id', table, ['last_run_id'])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f'ix_{table}_last_run_id', table_name=table)
