"""Pulls pages from an API source into a sink, saving the cursor only after the sink acknowledged them.

Resume guarantee: the saved file holds the source's cursor for the page being delivered plus the event_ids
of that page the sink has already acknowledged (``delivered``). A run killed between pages resumes at the
next page; one killed inside a page (between sink chunks) refetches that page and skips what was delivered.
Sources that may rewind within a pass (``may_rewind``: Plaid restarts pagination after a mutation) also keep
the ids delivered since the pass began (``pass_sent``), so a rewind after a restart re-sends nothing.
Only a crash *inside* one sink call can repeat events; they repeat with the same event_id, which the
pipeline drops as duplicates.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ingestion.apis.cursors import CursorStore
from ingestion.apis.http import HttpStats

Event = dict[str, Any]
Sink = Callable[[list[Event]], None]


@dataclass
class Page:
    """One fetched page: its mapped events, the cursor state after it, and whether the source is caught up."""

    events: list[Event]
    next_state: dict[str, Any]
    done: bool
    skipped: Counter[str] = field(default_factory=Counter)
    source_records: int = 0


class Source(Protocol):
    """A paged API turned into events (PlaidSource, RazorpayXSource)."""

    name: str
    may_rewind: bool

    @property
    def cursor_name(self) -> str:
        """File stem of this source's cursor (never contains a secret)."""
        ...

    def initial_state(self) -> dict[str, Any]:
        """The cursor state of a source never read before."""
        ...

    def fetch(self, state: dict[str, Any]) -> Page:
        """The page at ``state``."""
        ...

    @property
    def http_stats(self) -> HttpStats:
        """Request/retry counters of the underlying client."""
        ...


@dataclass
class IngestReport:
    """What one run did, updated after every page (pass ``on_page`` to watch it)."""

    source: str
    pages: int = 0
    events: int = 0
    source_records: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    caught_up: bool = False

    @property
    def rate(self) -> float:
        """Events delivered per second of wall time."""
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        """One line for logs and the CLI."""
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"
        state = "caught up" if self.caught_up else "more pages remain"
        return (f"{self.source}: {self.pages} pages, {self.events} events ({self.source_records} records read, "
                f"skipped: {skipped}; {self.duplicates} repeats suppressed), {self.requests} requests, "
                f"{self.retries} retries, {self.rate:.1f} events/s over {self.elapsed_s:.1f}s; {state}")


def _chunks(items: list[Event], size: int) -> Iterator[list[Event]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def run_ingest(api: Source, sink: Sink, state_dir: Path | str, *, max_pages: int | None = None,
               chunk_size: int = 100, persist: bool = True,
               on_page: Callable[[IngestReport], None] | None = None) -> IngestReport:
    """Deliver pages from ``api`` to ``sink`` until caught up or ``max_pages``; returns the run's report.

    ``sink`` receives lists of at most ``chunk_size`` events and must flush/acknowledge before returning;
    if it raises, the run stops and the cursor stays at the last acknowledged chunk. ``persist=False``
    (dry runs) reads the cursor but never writes it.
    """
    if chunk_size < 1 or (max_pages is not None and max_pages < 1):
        raise ValueError("chunk_size and max_pages must be >= 1")
    store = CursorStore(state_dir, api.cursor_name)
    report = IngestReport(source=api.name)
    stats0 = (api.http_stats.requests, api.http_stats.retries)
    started = time.monotonic()

    def refresh() -> None:
        report.requests = api.http_stats.requests - stats0[0]
        report.retries = api.http_stats.retries - stats0[1]
        report.elapsed_s = time.monotonic() - started

    with store.locked():
        saved = store.load() or {}
        state: dict[str, Any] = saved.get("source") or api.initial_state()
        delivered: list[str] = list(saved.get("delivered", []))
        # Ids delivered since the source's current pass began: what a rewinding source must not re-send.
        sent_this_pass: set[str] = set(saved.get("pass_sent", [])) | set(delivered)

        def save() -> None:
            if persist:
                doc: dict[str, Any] = {"source": state, "delivered": delivered}
                if api.may_rewind:
                    doc["pass_sent"] = sorted(sent_this_pass)
                store.save(doc)

        try:
            while True:
                page = api.fetch(state)
                report.skipped.update(page.skipped)
                report.source_records += page.source_records
                fresh: list[Event] = []
                in_page: set[str] = set()
                for event in page.events:
                    if event["event_id"] in sent_this_pass or event["event_id"] in in_page:
                        report.duplicates += 1
                    else:
                        in_page.add(event["event_id"])
                        fresh.append(event)
                pending = list(_chunks(fresh, chunk_size))
                for i, chunk in enumerate(pending):
                    sink(chunk)  # only what the sink acknowledged is recorded as sent
                    ids = [e["event_id"] for e in chunk]
                    report.events += len(chunk)
                    delivered.extend(ids)
                    sent_this_pass.update(ids)
                    if i < len(pending) - 1:
                        save()
                state, delivered = page.next_state, []
                if page.done:
                    sent_this_pass.clear()
                save()
                report.pages += 1
                report.caught_up = page.done
                refresh()
                if on_page is not None:
                    on_page(report)
                if page.done or (max_pages is not None and report.pages >= max_pages):
                    return report
        finally:
            refresh()
