"""The analyst queries in sql/warehouse/, run over the warehouse connection (the analyst role in production)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loanrisk.settings import REPO_ROOT, Settings

QUERY_DIR = REPO_ROOT / "sql" / "warehouse"
ANALYST_QUERIES: tuple[str, ...] = ("portfolio_risk_by_segment", "vintage_default_curves",
                                    "model_performance_by_version")


def query_text(path: Path) -> str:
    """The query of an analyst SQL file: its single statement, without the trailing semicolon."""
    from jobs.sqlfiles import split_statements
    stmts = split_statements(path.read_text())
    if len(stmts) != 1:
        from loanrisk.errors import ConfigError
        raise ConfigError(f"{path} must hold exactly one statement (found {len(stmts)})")
    return stmts[0]


def run_query(settings: Settings, path: Path | str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one analyst query (a path, or a name from ANALYST_QUERIES): column names and rows."""
    p = Path(path)
    if not p.suffix:
        p = QUERY_DIR / f"{p.name}.sql"
    from warehouse.loader import _connect
    conn = _connect(settings)
    try:
        cur = conn.cursor()
        cur.execute(query_text(p))
        return [d.name for d in cur.description], list(cur.fetchall())
    finally:
        conn.close()
