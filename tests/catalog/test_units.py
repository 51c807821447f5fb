"""Pure functions and wiring that need no server: cursors, page tokens, URLs, config,
migrations."""

from __future__ import annotations

import pytest

from corral.errors import InvalidArgument
from services.catalog import migrate
from services.catalog.config import CatalogConfig
from services.catalog.db import Database, normalize_url
from services.catalog.events import format_cursor, parse_cursor
from services.catalog.records import Position
from services.catalog.validation import decode_page_token, encode_page_token, page_size
from services.common.config import load


def test_cursor_round_trip():
    for position in (Position(0, 1), Position(0, 2**62), Position(812, 5)):
        assert parse_cursor(format_cursor(position)) == position
    assert format_cursor(Position(0, 7)) == "7"
    for bad in ("", "x", "1.2.3", "-1", " 1", "1e3", "9" * 20):
        with pytest.raises(InvalidArgument, match="cursor"):
            parse_cursor(bad)


def test_page_tokens_and_sizes():
    assert decode_page_token(encode_page_token("/a/é.jpg")) == "/a/é.jpg"
    assert decode_page_token("") is None
    with pytest.raises(InvalidArgument, match="page_token"):
        decode_page_token("***")
    assert (page_size(0), page_size(7), page_size(10**6)) == (100, 7, 1000)
    with pytest.raises(InvalidArgument, match="page_size"):
        page_size(-1)


def test_postgresql_urls_use_psycopg3():
    assert normalize_url("postgresql://u@h/db").startswith("postgresql+psycopg://")
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_config_defaults_to_sqlite_in_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("CORRAL_DATABASE_URL", raising=False)
    monkeypatch.delenv("CORRAL_CATALOG_ADDR", raising=False)
    config = load(CatalogConfig, ["--data-dir", str(tmp_path / "d")])
    assert config.addr == "127.0.0.1:50051"
    assert config.resolved_database_url() == f"sqlite:///{tmp_path / 'd' / 'catalog.db'}"
    url = load(CatalogConfig, ["--database-url", "postgresql://x/y"]).resolved_database_url()
    assert url == "postgresql://x/y"


def test_migrations_apply_on_a_fresh_database_and_are_idempotent(database_url):
    db = Database(database_url)
    try:
        assert migrate.current_revision(db) is None
        migrate.upgrade(db)
        migrate.upgrade(db)
        assert migrate.current_revision(db) == migrate.head_revision() is not None
    finally:
        db.dispose()
