"""alerts: an outbox of rendered digests and what each expert was told

``alert_outbox`` held one row per deviation and event; a digest is one message per expert holding
many deviations, so the table is rebuilt as one row per rendered message (subject, text, HTML, the
RFC 5322 bytes with their Message-ID, delivery state and the dispatcher's claim). No released
version ever wrote the old table (nothing queued alerts before this revision), so no row is copied;
an old table holding rows stops the upgrade rather than dropping them. ``alert_told`` records, per
recipient and deviation, the severity and status last told: two experts, two histories.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:40:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import store.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    rows = op.get_bind().execute(sa.text("SELECT count(*) FROM alert_outbox")).scalar()
    if rows:
        raise RuntimeError(f"alert_outbox holds {rows} rows of the old one-row-per-deviation shape: "
                           "nothing should have written them; move them aside before upgrading")
    with op.batch_alter_table('alert_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_outbox_sent_at'))
        batch_op.drop_index(batch_op.f('ix_alert_outbox_deviation_id'))
    op.drop_table('alert_outbox')

    op.create_table('alert_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('expert_name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('sender', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=False),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.Column('deviations', sa.Integer(), nullable=False),
    sa.Column('resolved', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('claimed_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failed_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id')
    )
    with op.batch_alter_table('alert_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_alert_outbox_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_outbox_recipient'), ['recipient'], unique=False)

    op.create_table('alert_told',
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('deviation_id', sa.Integer(), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('told_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deviation_id'], ['deviation.id'], ),
    sa.ForeignKeyConstraint(['outbox_id'], ['alert_outbox.id'], ),
    sa.PrimaryKeyConstraint('recipient', 'deviation_id')
    )
    with op.batch_alter_table('alert_told', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_told_deviation_id'), ['deviation_id'], unique=False)


def downgrade() -> None:
    # what was queued or told is lost with the tables: the old shape cannot hold a digest
    with op.batch_alter_table('alert_told', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_told_deviation_id'))
    op.drop_table('alert_told')
    with op.batch_alter_table('alert_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_outbox_recipient'))
        batch_op.drop_index('ix_alert_outbox_due')
    op.drop_table('alert_outbox')

    op.create_table('alert_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deviation_id', sa.Integer(), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('group', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.ForeignKeyConstraint(['deviation_id'], ['deviation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('deviation_id', 'event', 'severity', 'recipient'),
    sa.UniqueConstraint('message_id')
    )
    with op.batch_alter_table('alert_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_outbox_deviation_id'), ['deviation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_outbox_sent_at'), ['sent_at'], unique=False)
