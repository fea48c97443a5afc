"""The PostgreSQL serving database: applies sql/serving/postgres_tables.sql and the reader's grants."""

from __future__ import annotations

import psycopg
from psycopg import sql

from loanrisk.settings import REPO_ROOT, Settings

SERVING_DDL = REPO_ROOT / "sql" / "serving" / "postgres_tables.sql"


def ensure_serving_tables(settings: Settings) -> None:
    """Create the serving tables (idempotent) and let the reader role SELECT them, nothing more."""
    pg = settings.postgres
    with psycopg.connect(pg.dsn(pg.serving_db), autocommit=True) as conn:
        conn.execute(SERVING_DDL.read_text())
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
            sql.Identifier(pg.reader_user)))


def serving_connection(settings: Settings, reader: bool = False) -> psycopg.Connection:
    """A connection to the serving database, as the writer or as the read-only role."""
    pg = settings.postgres
    return psycopg.connect(pg.dsn(pg.serving_db, reader=reader))
