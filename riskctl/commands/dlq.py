"""`riskctl dlq list|export|redrive`: inspect dead letters and re-send corrected events."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from loanrisk.settings import get_settings


def _selection(topic: str | None, reason: str | None, ids: tuple[str, ...], limit: int | None):
    """The dead letters the options select; an unknown id is one clear error."""
    from ingestion.dead_letters import DeadLetterError, list_dead_letters
    frame = list_dead_letters(get_settings(), topic=topic, reason=reason, ids=None, limit=None)
    if ids:
        chosen = frame[frame["dlq_id"].map(lambda d: any(d.startswith(i) for i in ids))]
        missing = [i for i in ids if not chosen["dlq_id"].str.startswith(i).any()]
        if missing:
            raise DeadLetterError(f"no dead letter with id {missing[0]!r}")
        frame = chosen
    return frame.head(limit) if limit else frame


def _filters(fn):
    fn = click.option("--id", "ids", multiple=True, help="A dead letter id (or a unique prefix); repeatable.")(fn)
    fn = click.option("--reason", default=None, help="Reason prefix, e.g. 'missing:' or 'range:amount_minor'.")(fn)
    return click.option("--topic", default=None, help="Source topic, e.g. transactions.")(fn)


@click.group()
def dlq() -> None:
    """Dead letters: list, export originals for correction, re-send corrected events."""


@dlq.command("list")
@_filters
@click.option("--limit", type=int, default=20, show_default=True, help="Rows to show (0 = all).")
@click.option("--summary", is_flag=True, help="Counts per topic and reason instead of rows.")
def dlq_list(topic: str | None, reason: str | None, ids: tuple[str, ...], limit: int, summary: bool) -> None:
    """Show dead letters from the lake, newest first (payloads are PII-redacted)."""
    from ingestion.dead_letters import reason_counts
    frame = _selection(topic, reason, ids, None)
    if summary:
        counts = reason_counts(frame)
        for (src, why), n in counts.items():
            click.echo(f"{n:>8}  {src:<20} {why}")
        click.echo(f"{len(frame):>8}  total")
        return
    shown = frame.head(limit) if limit else frame
    for row in shown.itertuples(index=False):
        payload = row.payload if len(row.payload) <= 80 else row.payload[:77] + "..."
        click.echo(f"{row.dlq_id[:12]}  {row.received_at:%Y-%m-%d %H:%M:%S}  "
                   f"{row.source_topic}/{row.source_partition}@{row.source_offset}  {row.reason:<28} {payload}")
    click.echo(f"{len(shown)} of {len(frame)} dead letters")


@dlq.command("export")
@_filters
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File for the correction templates (JSON lines, mode 0600); default stdout.")
def dlq_export(topic: str | None, reason: str | None, ids: tuple[str, ...], limit: int, out: Path | None) -> None:
    """Write the original events of dead letters, read back from Kafka, as correction templates to edit.

    The originals hold raw PII (they come from Kafka, where it lives): the file is created 0600 and recorded, so
    `riskctl privacy erase` removes a customer's records from it too (what goes to stdout is not tracked).
    """
    from ingestion.dead_letters import export_originals
    records = export_originals(get_settings(), _selection(topic, reason, ids, limit))
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if out is None:
        sys.stdout.write(text)
        return
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    # The file holds raw PII outside the platform's stores: recorded, so an erasure request finds it.
    from loanrisk.exports import record_export
    record_export(get_settings(), out, len(records), "dead-letter originals (riskctl dlq export)")
    click.echo(f"wrote {len(records)} correction templates to {out}: edit each 'event', then "
               f"riskctl dlq redrive --corrections {out}", err=True)


@dlq.command("redrive")
@_filters
@click.option("--corrections", type=click.File("r", encoding="utf-8"), default=None,
              help='JSON lines {"dlq_id": ..., "event": {...}} (from `dlq export`, edited).')
@click.option("--dry-run", is_flag=True, help="Validate and report, send nothing.")
def dlq_redrive(topic: str | None, reason: str | None, ids: tuple[str, ...], corrections, dry_run: bool) -> None:
    """Re-send dead letters to their topics: corrected events, or originals that now pass the contract.

    Every event is validated first; one that still breaks its contract is refused and listed.
    The job drops repeated event ids, so re-running a redrive does not double anything.
    """
    from ingestion.dead_letters import read_corrections
    from ingestion.dead_letters import redrive as do_redrive
    fixes = read_corrections(corrections) if corrections is not None else None
    if fixes is not None and not ids and not topic and not reason:
        ids = tuple(fixes)
    if not (ids or topic or reason):
        raise click.UsageError("choose dead letters with --corrections, --id, --topic or --reason")
    report = do_redrive(get_settings(), _selection(topic, reason, ids, None), fixes, dry_run=dry_run)
    for dlq_id, broken in report.refused.items():
        click.echo(f"refused {dlq_id[:12]}: still {broken}")
    click.echo(("dry run: would have " if dry_run else "") + report.summary())
