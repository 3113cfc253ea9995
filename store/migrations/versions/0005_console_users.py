"""console users and the console's log of acts

The web console (issue 16) signs people in: ``console_user`` keeps each one's role, expert
groups and argon2 password hash (never a password); users are disabled, never deleted.
``console_action`` records who did what in the console and when.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import store.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('display_name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('groups', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('console_action',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('console_action', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_action_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_action_username'), ['username'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('console_action', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_action_username'))
        batch_op.drop_index(batch_op.f('ix_console_action_at'))
    op.drop_table('console_action')
    op.drop_table('console_user')
