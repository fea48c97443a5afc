"""`riskctl sql [-f FILE]`: the Flink SQL client with the lake catalog, sources, views and scorer registered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from loanrisk.settings import get_settings


@click.command("sql")
@click.option("-f", "--file", "script", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run this SQL script instead of opening the interactive client.")
def sql(script: Path | None) -> None:
    """Open Flink's SQL client, e.g. `SELECT * FROM lake.risk.scores` works at once."""
    from stack.flink_conf import flink_env
    from jobs.sql_client import client_command
    settings = get_settings()
    env = {**os.environ, **flink_env(settings)}
    sys.exit(subprocess.call(client_command(settings, script), env=env))
