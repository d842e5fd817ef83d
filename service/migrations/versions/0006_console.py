"""coordinators' console: the coordinator list, attendance, minutes, submitted forms

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00
"""

from alembic import op
import sqlalchemy as sa
import service.db


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('coordinator',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('language', sa.Enum('en', 'km', name='language', native_enum=False, length=20), nullable=False),
    sa.Column('added_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('added_by', sa.String(length=254), nullable=False),
    sa.Column('removed_at', service.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    op.create_table('attendance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invitation_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('present', 'substitute', 'absent', name='attendancestatus', native_enum=False, length=20), nullable=False),
    sa.Column('marked_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('marked_by', sa.String(length=254), nullable=False),
    sa.ForeignKeyConstraint(['invitation_id'], ['invitation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('invitation_id')
    )
    op.create_table('meeting_minutes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('body_en', sa.Text(), nullable=False),
    sa.Column('body_km', sa.Text(), nullable=False),
    sa.Column('published_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_by', sa.String(length=254), nullable=False),
    sa.Column('announcement_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['announcement_id'], ['announcement.id'], ),
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('meeting_id')
    )
    op.create_table('console_submission',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('result', sa.String(length=80), nullable=False),
    sa.Column('created_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('console_submission')
    op.drop_table('meeting_minutes')
    op.drop_table('attendance')
    op.drop_table('coordinator')
