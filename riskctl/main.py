"""The `riskctl` console script: command registration and one-line error reporting."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from loanrisk.errors import LoanRiskError

# (module, attribute) of every command group; modules are imported when the CLI starts.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("riskctl.commands.stack_cmd", "setup"),
    ("riskctl.commands.stack_cmd", "doctor"),
    ("riskctl.commands.stack_cmd", "stack"),
    ("riskctl.commands.produce", "produce"),
    ("riskctl.commands.ingest", "ingest"),
    ("riskctl.commands.job", "job"),
    ("riskctl.commands.dlq", "dlq"),
    ("riskctl.commands.demo", "demo"),
    ("riskctl.commands.model", "model"),
    ("riskctl.commands.sql_cmd", "sql"),
    ("riskctl.commands.dashboards", "dashboards"),
    ("riskctl.commands.flows", "flows"),
    ("riskctl.commands.privacy", "privacy"),
    ("riskctl.commands.warehouse", "warehouse"),
    ("riskctl.commands.serve", "serve"),
    ("riskctl.commands.serve", "api_key"),
    ("riskctl.commands.k8s", "k8s"),
    ("riskctl.commands.compose", "compose"),
)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loan-risk", prog_name="riskctl")
@click.option("-v", "--verbose", count=True, help="Log more: -v info, -vv debug (stderr; format: stack.log_format).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default=None,
              help="Log level, over -v.")
def cli(verbose: int, log_level: str | None) -> None:
    """loan-risk: real-time loan default risk on Kafka, Flink, Iceberg, PostgreSQL and Snowflake."""
    from loanrisk.logs import setup_logging
    setup_logging(log_level or LOG_LEVELS[max(2 - verbose, 0)])
    logging.getLogger("riskctl").debug("riskctl %s", " ".join(sys.argv[1:]))


class CommandModuleMissing(LoanRiskError):
    """A command module of COMMANDS, or a package it needs, cannot be imported."""


def _register() -> None:
    for module, attr in COMMANDS:
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise CommandModuleMissing(
                f"riskctl cannot load its command module {module}: no module named {exc.name!r}; run `make setup` "
                "to install the platform environment, or remove the module from COMMANDS in riskctl/main.py") from exc
        cli.add_command(getattr(loaded, attr))


def main() -> None:
    """Run the CLI; errors of ours print one line and exit 2."""
    try:
        _register()
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LoanRiskError as exc:
        click.echo(f"riskctl: error: {exc}", err=True)
        sys.exit(2)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
