"""field visits carry the import that last wrote them: an incremental reconciliation judges their project years

``capital.inspection_mismatch`` was judged whole in every run, since visits arrive by import, not by
a sync, and no watermark covered them: at 100k projects and ~2,000 visits that rule was a tenth of a
nightly run (docs/benchmarks.md, session 32). An import now numbers itself (the largest revision
plus one, drawn under a lock that imports take one at a time) and writes that number on every visit
it inserts or changes; a run keeps the largest it saw, and the next judges again the project years
of the visits written since (reconcile/changes.py). Adds a nullable column and its index; a run
after the upgrade finds no such watermark in the last run and judges everything once.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 03:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('field_inspection', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_field_inspection_revision'), ['revision'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('field_inspection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_field_inspection_revision'))
        batch_op.drop_column('revision')
