"""Unit-test support for the warehouse: the local Snowflake endpoint (started by stack/snowflake_endpoint.py, the
stack's own code) on a free port, and a small local Iceberg catalog (SQLite + folder) with the lake's tables."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loanrisk.settings import REPO_ROOT, Settings
from stack.process import tcp_ready
from tests.moto_s3 import free_port


@contextmanager
def snowflake_endpoint(db_dir: Path) -> Iterator[Settings]:
    """Run the endpoint as the stack does (a subprocess, stopped by PID); yields Settings pointing at it."""
    db_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(db_dir / "endpoint.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "stack.snowflake_endpoint", "--host", "127.0.0.1",
                             "--port", str(port), "--db-path", str(db_dir)], cwd=REPO_ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not tcp_ready("127.0.0.1", port):
            assert proc.poll() is None, (db_dir / "endpoint.log").read_text()
            assert time.monotonic() < deadline, "the Snowflake endpoint did not start"
            time.sleep(0.2)
        yield Settings(snowflake={"port": port})
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def local_lake(root: Path):
    """A pyiceberg SqlCatalog named like the lake's (SQLite file + local folder), namespace ``risk``."""
    from pyiceberg.catalog.sql import SqlCatalog
    root.mkdir(parents=True, exist_ok=True)
    cat = SqlCatalog("lake", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{root}/warehouse")
    cat.create_namespace_if_not_exists("risk")
    return cat


LOADER_SCRIPT = """
import sys
from loanrisk.settings import Settings
from tests.warehouse_support import local_lake
from warehouse.loader import sync
from pathlib import Path
report = sync(Settings(snowflake={"port": int(sys.argv[1])}), tables=sys.argv[3].split(","), progress=print,
              lake=local_lake(Path(sys.argv[2])), batch_rows=int(sys.argv[4]))
print(report.summary())
"""


def run_loader(settings: Settings, lake_root: Path, tables: list[str], batch_rows: int,
               fault: str | None = None) -> subprocess.CompletedProcess:
    """Run the loader in a subprocess (optionally with a fault point that SIGKILLs it)."""
    import os

    from warehouse.loader import FAULT_ENV
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-c", LOADER_SCRIPT, str(settings.snowflake.port), str(lake_root),
                           ",".join(tables), str(batch_rows)], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
