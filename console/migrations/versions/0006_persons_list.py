"""The persons list: indexes for its search and a counter of its data.

- The search matches any part of a name, customer number or plate: pg_trgm GIN indexes on PostgreSQL (the
  extension is created when missing; it is a trusted extension, so the database's owner may create it). None
  on SQLite, which has no such index: its search reads the name's and the customer number's b-tree indexes
  whole, which costs less than reading the table.
- ``persons_list_version`` holds one number that every write to what the list shows bumps (persons, photos,
  plates, consents, scope branches, branches), by triggers, so that a console process may keep a list answer
  until it changes, whoever wrote (another process, the importer, an operator by hand).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (("ix_persons_name_trgm", "persons", "lower(name)"),
            ("ix_persons_external_id_trgm", "persons", "lower(external_id)"),
            ("ix_plates_plate_trgm", "plates", "plate"))
_LISTED = ("persons", "photos", "plates", "consents", "person_branches", "branches")
_BUMP = "UPDATE persons_list_version SET version = version + 1 WHERE id = 1"


def _postgres() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def upgrade() -> None:
    op.create_table(
        "persons_list_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persons_list_version")),
    )
    op.execute("INSERT INTO persons_list_version (id, version) VALUES (1, 0)")
    if _postgres():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, table, expression in _INDEXES:
            op.create_index(name, table, [sa.text(f"{expression} gin_trgm_ops")], postgresql_using="gin")
        op.execute(f"""CREATE FUNCTION persons_list_bump() RETURNS trigger LANGUAGE plpgsql AS $$
                       BEGIN {_BUMP}; RETURN NULL; END $$""")
        for table in _LISTED:  # once per statement: a bulk insert bumps it once
            op.execute(f"""CREATE TRIGGER {table}_list_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
                           ON {table} FOR EACH STATEMENT EXECUTE FUNCTION persons_list_bump()""")
        return
    for table in _LISTED:
        for event in ("insert", "update", "delete"):
            op.execute(f"""CREATE TRIGGER {table}_list_version_{event} AFTER {event.upper()} ON {table}
                           BEGIN {_BUMP}; END""")


def downgrade() -> None:
    if _postgres():
        for table in reversed(_LISTED):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_list_version ON {table}")
        op.execute("DROP FUNCTION IF EXISTS persons_list_bump()")
        for name, table, _expression in reversed(_INDEXES):
            op.drop_index(name, table_name=table)
    else:
        for table in reversed(_LISTED):
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_list_version_{event}")
    op.drop_table("persons_list_version")
