"""Alembic revisions of the console's schema; the same revisions run on PostgreSQL and SQLite."""
