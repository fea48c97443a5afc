"""`riskctl setup`, `riskctl doctor` and `riskctl stack up|down|status|logs|compose-env`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from loanrisk.settings import get_settings


@click.command()
@click.option("--spark-peer", is_flag=True,
              help="Also install the Spark peer of the benchmarks (requirements/spark.lock, jar group spark_peer), "
                   "which bench/spark_peer.py otherwise installs on its first run.")
def setup(spark_peer: bool) -> None:
    """Install system packages, the Flink runtime environment and the pinned jars; lay out FLINK_HOME."""
    from stack.setup import ensure_spark_peer, run_setup
    from stack.system_packages import ensure_system_packages
    ensure_system_packages(progress=lambda m: click.echo(f"  {m}"))
    timings = run_setup(get_settings(), progress=lambda m: click.echo(f"  {m}"))
    total = sum(timings.values())
    click.echo(f"setup done in {total:.1f}s: FLINK_HOME={get_settings().flink_home}")
    if spark_peer:
        python, jars = ensure_spark_peer(get_settings(), progress=lambda m: click.echo(f"  {m}"))
        click.echo(f"Spark peer: {python} with {len(jars)} jars")


@click.command()
def doctor() -> None:
    """Check Java, Maven, ports, disk and versions: one line per problem."""
    from stack.doctor import run_checks
    problems, notes = run_checks(get_settings())
    for note in notes:
        click.echo(f"ok    {note}")
    for problem in problems:
        click.echo(f"FAIL  {problem}")
    if problems:
        raise SystemExit(1)
    click.echo("doctor: all checks passed")


@click.group()
def stack() -> None:
    """The local stack of real services (Kafka, Flink, PostgreSQL, S3, Snowflake endpoint, Prometheus)."""


@stack.command("up")
@click.option("--with-prefect/--without-prefect", default=None, help="Also start the Prefect server.")
@click.option("--with-api/--without-api", default=None,
              help="Also start the scoring API (riskctl serve) on api.host:api.port.")
@click.option("--taskmanagers", type=click.IntRange(1, 8), default=None,
              help="TaskManager processes of the Flink cluster (default: flink.taskmanagers).")
def stack_up(with_prefect: bool | None, with_api: bool | None, taskmanagers: int | None) -> None:
    """Start every service (idempotent) and wait until each is healthy."""
    from loanrisk.settings import override
    from stack.manager import up
    settings = get_settings()
    if taskmanagers is not None:
        settings = override(settings, flink={"taskmanagers": taskmanagers})
    timings = up(settings, with_prefect=with_prefect, progress=click.echo, with_api=with_api)
    click.echo(f"stack up: {len(timings)} services healthy in {sum(timings.values()):.1f}s")


@stack.command("compose-env")
@click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write it (default: .env beside docker-compose.yml, where docker compose reads it).")
@click.option("--force", is_flag=True, help="Replace an existing file (new secrets: remove the volumes too).")
def stack_compose_env(path: Path | None, force: bool) -> None:
    """Write the .env file docker-compose.yml takes its secrets from (generated, one per role, mode 0600)."""
    from stack.compose_env import COMPOSE_FILE, write_env_file
    target = path or COMPOSE_FILE.with_name(".env")
    names = write_env_file(target, force=force)
    click.echo(f"wrote {target} (mode 0600): {', '.join(names)}")


@stack.command("down")
def stack_down() -> None:
    """Stop every process the stack started, by PID (data is kept)."""
    from stack.manager import down
    left = down(get_settings(), progress=click.echo)
    if left:
        raise click.ClickException(f"still running: {', '.join(left)}")
    click.echo("stack down: nothing of ours is running")


@stack.command("status")
def stack_status() -> None:
    """Print service, pid, port and health."""
    from stack.manager import status
    click.echo(f"{'service':<11}{'pid':>8}  {'ports':<12}{'healthy':<8}log")
    for row in status(get_settings()):
        click.echo(f"{row.name:<11}{row.pid or '-':>8}  {row.ports:<12}{'yes' if row.healthy else 'no':<8}{row.log}")


@stack.command("logs")
@click.argument("service")
@click.option("-n", "--lines", default=50, show_default=True)
@click.option("-f", "--follow", is_flag=True)
def stack_logs(service: str, lines: int, follow: bool) -> None:
    """Show the log of SERVICE (e.g. kafka, flink-taskmanager, postgres)."""
    from stack.manager import log_path
    path = log_path(get_settings(), service)
    if not path.exists():
        raise click.ClickException(f"{path} does not exist yet")
    cmd = ["tail", f"-n{lines}"] + (["-F"] if follow else []) + [str(path)]
    sys.exit(subprocess.call(cmd))
