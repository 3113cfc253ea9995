"""partial indexes of the reports and performance items the comptroller has not approved

The approval_overdue rules (reconcile/rules/) read the reports and performance items not approved
by the comptroller and entered before the cut-off. Without an index each run read every item of
its years through the agreements and operations (1,000,000 performance items and 400,000 reports
at 100k projects, of which ~2 % are not approved): their selects took 0.21–0.26 s and 0.36–0.46 s
on SQLite, paid by every run and in full by a nightly incremental run, whose cut-off moves every
day. These partial indexes hold only the rows not approved, in the order the rules read them
(docs/benchmarks.md, session 22). Adds indexes only.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 03:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

NOT_APPROVED = "comptroller_status != 'approved'"  # as store.models.NOT_APPROVED at this revision
INDEXES = (('ix_progress_report_pending', 'progress_report', ['project_year_id', 'quarter']),
           ('ix_operation_performance_pending', 'operation_performance', ['operation_id', 'quarter']))


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, sqlite_where=sa.text(NOT_APPROVED),
                        postgresql_where=sa.text(NOT_APPROVED))


def downgrade() -> None:
    for name, table, _columns in INDEXES:
        op.drop_index(name, table_name=table)
