"""The PostgreSQL serving database: applies sql/serving/postgres_tables.sql and the reader's grants, and renders
the scoring API's tables (sql/serving/api_tables.sql)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from loanrisk.settings import REPO_ROOT, Settings

SERVING_DDL = REPO_ROOT / "sql" / "serving" / "postgres_tables.sql"
API_DDL = REPO_ROOT / "sql" / "serving" / "api_tables.sql"
# The pg_advisory_xact_lock key under which every process of ours runs its serving DDL ("loanrisk" in ASCII).
DDL_LOCK = 0x6C6F616E7269736B


def serving_ddl() -> str:
    """sql/serving/postgres_tables.sql with each table's DDL rendered from contracts/tables.py."""
    from contracts.table_sql import table_fragments
    from jobs.sqlfiles import render
    return render(SERVING_DDL.read_text(), table_fragments())


def api_ddl() -> str:
    """sql/serving/api_tables.sql with the scoring API's tables rendered from contracts/tables.py."""
    from contracts.table_sql import table_fragments
    from jobs.sqlfiles import render
    return render(API_DDL.read_text(), table_fragments())


def run_ddl(conn: psycopg.Connection, ddl: str) -> None:
    """Run ``ddl`` (CREATE ... IF NOT EXISTS statements) in one transaction, one process at a time.

    PostgreSQL does not make IF NOT EXISTS safe against itself: two sessions creating the same schema or table
    at once both find it missing, and one fails on the catalog's unique index. The job, the scoring API's
    replicas and the CLI may all start at once, so each takes the same advisory lock first.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
        conn.execute(ddl)


def ensure_serving_tables(settings: Settings) -> None:
    """Create the serving tables (idempotent) and let the reader role SELECT them, nothing more."""
    pg = settings.postgres
    with psycopg.connect(pg.dsn(pg.serving_db), autocommit=True) as conn:
        run_ddl(conn, serving_ddl())
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
            sql.Identifier(pg.reader_user)))


def serving_connection(settings: Settings, reader: bool = False) -> psycopg.Connection:
    """A connection to the serving database, as the writer or as the read-only role."""
    pg = settings.postgres
    return psycopg.connect(pg.dsn(pg.serving_db, reader=reader))
