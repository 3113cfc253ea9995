"""the plan per project year: project_year.plan_code, as the portal shows it for that year

Until now a project's plan was stored once, on the project, and the year written last won: a sync
of an older year switched a project back to that year's plan without counting a change. Each
project year now keeps its own plan (history and change counts come with it, as for every other
field of the year), and project.plan_code stays the latest year's. Existing project years take
their project's current plan. Adds a nullable column (with its reference to plan) only.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 02:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('project_year') as batch:
        batch.add_column(sa.Column('plan_code', sa.String(length=64), nullable=True))
        batch.create_foreign_key('fk_project_year_plan_code_plan', 'plan', ['plan_code'], ['code'])
    op.execute("UPDATE project_year SET plan_code = "
               "(SELECT project.plan_code FROM project WHERE project.id = project_year.project_id)")


def downgrade() -> None:
    with op.batch_alter_table('project_year') as batch:
        batch.drop_constraint('fk_project_year_plan_code_plan', type_='foreignkey')
        batch.drop_column('plan_code')
