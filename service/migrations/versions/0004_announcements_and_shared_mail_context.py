"""announcements and shared mail context

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 15:24:57.013774
"""

from alembic import op
import sqlalchemy as sa
import service.db


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('announcement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject_en', sa.String(length=300), nullable=False),
    sa.Column('subject_km', sa.String(length=300), nullable=False),
    sa.Column('body_en', sa.Text(), nullable=False),
    sa.Column('body_km', sa.Text(), nullable=False),
    sa.Column('test', sa.Boolean(), nullable=False),
    sa.Column('queued', sa.Integer(), nullable=False),
    sa.Column('created_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('shared_mail_context',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', service.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wants_announcements', sa.Boolean(), server_default='1', nullable=False))

    with op.batch_alter_table('outbound_email', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shared_context_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_outbound_email_shared_context', 'shared_mail_context', ['shared_context_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('outbound_email', schema=None) as batch_op:
        # WARNING: constraint name is None; this directive will fail as
        # rendered.  Add a name, or use a naming convention; see
        # https://alembic.sqlalchemy.org/en/latest/naming.html
        batch_op.drop_constraint('fk_outbound_email_shared_context', type_='foreignkey')
        batch_op.drop_column('shared_context_id')

    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_column('wants_announcements')

    op.drop_table('shared_mail_context')
    op.drop_table('announcement')
