"""console users' session epoch: signing out, a new password and disabling end every session

The console's session is a signed cookie: nothing of it was kept on the server, so a cookie copied
before its user signed out, was given a new password or was disabled still signed in. Each user now
has an epoch, written into a session at sign-in; signing out, a new password and disabling raise
it, and the console refuses a session of another epoch (web/app.py). Adds a column, 0 for every
user; sessions made before the upgrade carry no epoch and end: everyone signs in again once.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 08:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('console_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('console_user', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')
