"""Alembic migrations of the catalog schema, applied at start by services.catalog.migrate."""
