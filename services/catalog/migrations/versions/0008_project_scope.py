"""Project scope of the event stream (issue 7): every event records its dataset's project, so
a project's subscribers get only its events (also the `deleted` events of a dataset deleted
since); leased groups filter by project; consumer group names of project-bound keys live under
their project ("<project>/<name>"), trigger groups too ("<project>/trigger:<name>").

Revision ID: 0008_project_scope
Revises: 0007_projects_keys
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_project_scope"
down_revision = "0007_projects_keys"
branch_labels = None
depends_on = None

_GROUP_TABLES = (("consumer_groups", "name"), ("leased_groups", "name"),
                 ("event_leases", "group_name"))


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    # Every dataset and trigger so far belongs to "default".
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("project", sa.String(128), nullable=False,
                                   server_default="default"))
    with op.batch_alter_table("leased_groups") as batch:
        batch.add_column(sa.Column("project", sa.String(128), nullable=False,
                                   server_default=""))
    if _is_postgres():
        # "<project>/<name>": a 128-character project and a 128-character name. SQLite does
        # not enforce VARCHAR lengths. Widening a varchar rewrites neither table nor index.
        for table, column in _GROUP_TABLES:
            op.alter_column(table, column, type_=sa.String(320),
                            existing_type=sa.String(128), existing_nullable=False)
        op.create_index("ix_events_project_txid_seq", "events", ["project", "txid", "seq"])
    else:  # SQLite orders events by seq alone (txid is always 0 there)
        op.create_index("ix_events_project_seq", "events", ["project", "seq"])
    # Trigger groups were "trigger:<name>", all of project default.
    for table, column in _GROUP_TABLES:
        op.execute(f"UPDATE {table} SET {column} = 'default/' || {column} "
                   f"WHERE {column} LIKE 'trigger:%'")
    op.execute("UPDATE leased_groups SET project = 'default' WHERE name LIKE 'default/trigger:%'")


def downgrade() -> None:
    for table, column in _GROUP_TABLES:
        op.execute(f"UPDATE {table} SET {column} = substr({column}, 9) "
                   f"WHERE {column} LIKE 'default/trigger:%'")
    if _is_postgres():
        op.drop_index("ix_events_project_txid_seq", "events")
    else:
        op.drop_index("ix_events_project_seq", "events")
    with op.batch_alter_table("leased_groups") as batch:
        batch.drop_column("project")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("project")
