"""deviation_found: the day a run found a rule's active deviations of a year again

A recording run left every active deviation of its years and rules found again, and wrote the run's
day into each one's ``last_found_on``: a nightly run at 100k projects rewrote ~240,000 deviation
rows (the whole 200 MB table on SQLite, new row versions on PostgreSQL) to move one date. The day
is now kept once per (kind, rule, fiscal year) here, and ``store.models.last_found`` reads a
deviation's last day found from both (docs/benchmarks.md, session 21). Empty at first: every
stored ``last_found_on`` was written by the old rule and is exact.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 00:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'deviation_found',
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('fiscal_year', sa.Integer(), nullable=False),
        sa.Column('found_on', sa.Date(), nullable=False),
        sa.Column('reconcile_run_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('kind', 'rule', 'fiscal_year'),
    )


def downgrade() -> None:
    # the days kept here go back into the deviations they describe, as the old rule kept them
    op.execute("UPDATE deviation SET last_found_on = (SELECT f.found_on FROM deviation_found f "
               "WHERE f.kind = deviation.kind AND f.rule = deviation.rule AND f.fiscal_year = deviation.fiscal_year) "
               "WHERE status IN ('open', 'acknowledged') AND EXISTS (SELECT 1 FROM deviation_found f "
               "WHERE f.kind = deviation.kind AND f.rule = deviation.rule AND f.fiscal_year = deviation.fiscal_year "
               "AND f.found_on > deviation.last_found_on)")
    op.drop_table('deviation_found')
