"""review sign-off: the consolidation group's approval of a monitoring period

One row per approved fiscal year and quarter (who, when, note, the as-of day of the frozen report,
its archive folder and the SHA-256 of the archive's manifest); the unique key makes a period
approvable once. A new table only: nothing existing is rewritten, on SQLite or PostgreSQL.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.models

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'review_signoff',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('fiscal_year', sa.Integer(), nullable=False),
        sa.Column('quarter', sa.Integer(), nullable=False),
        sa.Column('approved_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('approved_at', store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('as_of', sa.Date(), nullable=False),
        sa.Column('archive_path', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('manifest_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('fiscal_year', 'quarter'),
    )


def downgrade() -> None:
    op.drop_table('review_signoff')
