"""the first tables

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 14:28:41.753834
"""

from alembic import op
import sqlalchemy as sa
import service.db


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('subject_type', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=254), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_at'), ['at'], unique=False)

    op.create_table('organisation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.Enum('organisation', 'institution', 'individual', name='organisationkind', native_enum=False, length=20), nullable=False),
    sa.Column('website', sa.String(length=300), nullable=False),
    sa.Column('represented_in_cambodia', sa.Boolean(), nullable=False),
    sa.Column('cambodia_location', sa.String(length=200), nullable=False),
    sa.Column('work_summary', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('active', 'inactive', name='organisationstatus', native_enum=False, length=20), nullable=False),
    sa.Column('created_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id')
    )
    op.create_table('outbound_email',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('recipient_name', sa.String(length=200), nullable=False),
    sa.Column('template', sa.String(length=80), nullable=False),
    sa.Column('language', sa.Enum('en', 'km', name='language', native_enum=False, length=20), nullable=False),
    sa.Column('context', sa.JSON(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=True),
    sa.Column('list_mail', sa.Boolean(), nullable=False),
    sa.Column('message_id', sa.String(length=250), nullable=False),
    sa.Column('status', sa.Enum('queued', 'sent', 'failed', 'expired', 'suppressed', name='outboxstatus', native_enum=False, length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('not_after', service.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=80), nullable=False),
    sa.Column('lease_expires_at', service.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('created_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', service.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key'),
    sa.UniqueConstraint('message_id')
    )
    with op.batch_alter_table('outbound_email', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_email_due', ['status', 'not_before'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbound_email_recipient'), ['recipient'], unique=False)

    op.create_table('suppression',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('created_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    op.create_table('token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.Enum('confirm', 'review', 'rsvp', 'unsubscribe', name='tokenpurpose', native_enum=False, length=20), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=254), nullable=False),
    sa.Column('created_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', service.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('used_at', service.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('digest')
    )
    with op.batch_alter_table('token', schema=None) as batch_op:
        batch_op.create_index('ix_token_subject', ['purpose', 'subject_id'], unique=False)

    op.create_table('contact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=False),
    sa.Column('role', sa.String(length=200), nullable=False),
    sa.Column('language', sa.Enum('en', 'km', name='language', native_enum=False, length=20), nullable=False),
    sa.Column('status', sa.Enum('active', 'unsubscribed', 'bounced', 'inactive', name='contactstatus', native_enum=False, length=20), nullable=False),
    sa.Column('created_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email'),
    sa.UniqueConstraint('public_id')
    )
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('join_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('language', sa.Enum('en', 'km', name='language', native_enum=False, length=20), nullable=False),
    sa.Column('submitted', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('unconfirmed', 'pending', 'approved', 'declined', name='requeststatus', native_enum=False, length=20), nullable=False),
    sa.Column('review_note', sa.Text(), nullable=False),
    sa.Column('reviewed_by', sa.String(length=254), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('created_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', service.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_at', service.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id')
    )
    with op.batch_alter_table('join_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_join_request_email'), ['email'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('join_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_join_request_email'))

    op.drop_table('join_request')
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_organisation_id'))

    op.drop_table('contact')
    with op.batch_alter_table('token', schema=None) as batch_op:
        batch_op.drop_index('ix_token_subject')

    op.drop_table('token')
    op.drop_table('suppression')
    with op.batch_alter_table('outbound_email', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbound_email_recipient'))
        batch_op.drop_index('ix_outbound_email_due')

    op.drop_table('outbound_email')
    op.drop_table('organisation')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_at'))

    op.drop_table('audit_event')
