"""attention reasons: why inbound mail needs a person, kept to be said in each coordinator's language

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 06:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Messages filed before this revision keep their English detail and no reason.
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sa.String(length=40), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('reason_args', sa.JSON(), nullable=False, server_default='{}'))


def downgrade() -> None:
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.drop_column('reason_args')
        batch_op.drop_column('reason')
