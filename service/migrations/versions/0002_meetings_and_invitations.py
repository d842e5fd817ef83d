"""meetings and invitations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 14:38:19.697921
"""

from alembic import op
import sqlalchemy as sa
import service.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('meeting_series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title_en', sa.String(length=200), nullable=False),
    sa.Column('title_km', sa.String(length=200), nullable=False),
    sa.Column('rrule', sa.String(length=500), nullable=False),
    sa.Column('first_starts_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('until_at', service.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('timezone', sa.String(length=60), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('location', sa.String(length=300), nullable=False),
    sa.Column('online_url', sa.String(length=500), nullable=False),
    sa.Column('agenda_en', sa.Text(), nullable=False),
    sa.Column('agenda_km', sa.Text(), nullable=False),
    sa.Column('invite_days', sa.Integer(), nullable=False),
    sa.Column('followup_days', sa.JSON(), nullable=False),
    sa.Column('reminder_days', sa.Integer(), nullable=False),
    sa.Column('created_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('meeting',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=True),
    sa.Column('occurrence_at', service.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('title_en', sa.String(length=200), nullable=False),
    sa.Column('title_km', sa.String(length=200), nullable=False),
    sa.Column('starts_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('timezone', sa.String(length=60), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('location', sa.String(length=300), nullable=False),
    sa.Column('online_url', sa.String(length=500), nullable=False),
    sa.Column('agenda_en', sa.Text(), nullable=False),
    sa.Column('agenda_km', sa.Text(), nullable=False),
    sa.Column('invite_days', sa.Integer(), nullable=False),
    sa.Column('followup_days', sa.JSON(), nullable=False),
    sa.Column('reminder_days', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('scheduled', 'cancelled', name='meetingstatus', native_enum=False, length=20), nullable=False),
    sa.Column('created_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['meeting_series.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id'),
    sa.UniqueConstraint('series_id', 'occurrence_at', name='uq_meeting_occurrence')
    )
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_starts_at'), ['starts_at'], unique=False)

    op.create_table('invitation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('answer', sa.Enum('none', 'yes', 'no', 'maybe', name='rsvp', native_enum=False, length=20), nullable=False),
    sa.Column('answered_at', service.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answered_via', sa.Enum('link', 'email', 'calendar', name='answerchannel', native_enum=False, length=20), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('substitute_name', sa.String(length=200), nullable=False),
    sa.Column('substitute_email', sa.String(length=254), nullable=False),
    sa.Column('invited_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('invitation_message_id', sa.String(length=250), nullable=False),
    sa.Column('followup_stage', sa.Integer(), nullable=False),
    sa.Column('reminded_sequence', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ),
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('meeting_id', 'contact_id', name='uq_invitation')
    )
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitation_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invitation_meeting_id'), ['meeting_id'], unique=False)

    with op.batch_alter_table('outbound_email', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topic', sa.String(length=80), server_default='', nullable=False))
        batch_op.create_index(batch_op.f('ix_outbound_email_topic'), ['topic'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbound_email', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbound_email_topic'))
        batch_op.drop_column('topic')

    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitation_meeting_id'))
        batch_op.drop_index(batch_op.f('ix_invitation_contact_id'))

    op.drop_table('invitation')
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_starts_at'))

    op.drop_table('meeting')
    op.drop_table('meeting_series')
