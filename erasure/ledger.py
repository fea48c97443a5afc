"""The erasure ledger: which customers were erased and when, so an erasure is applied again while a source could
bring their rows back (a job resumed from an earlier checkpoint re-reads Kafka from that checkpoint's offsets and
restores the state it held then; a replay re-sends history). Kept in <stack.state_dir>/erasures.json, 0600: the
ids of erased customers, and nothing else of them, is what honouring the request needs, and an entry is forgotten
once no source can bring the customer's rows back, so the ledger does not keep erased ids for ever."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loanrisk.files import write_private
from loanrisk.settings import Settings


def ledger_path(settings: Settings) -> Path:
    return settings.state_dir / "erasures.json"


def erasures(settings: Settings) -> list[dict[str, Any]]:
    """Every recorded erasure ({"customer_id", "erased_at"}), latest per customer."""
    path = ledger_path(settings)
    return list(json.loads(path.read_text())) if path.is_file() else []


def record_erasure(settings: Settings, customer_id: str, at: float | None = None) -> None:
    """Record (or refresh) that ``customer_id`` was erased at ``at`` (now by default)."""
    kept = [e for e in erasures(settings) if e["customer_id"] != customer_id]
    kept.append({"customer_id": customer_id, "erased_at": time.time() if at is None else at})
    write_private(ledger_path(settings), json.dumps(kept, indent=1))


def replay_window_s(settings: Settings) -> float:
    """How long after an erasure a source can still hold the customer's events when the restore points are not
    known: the topics' longest life, or the oldest checkpoint or savepoint a job can be resumed from (which
    re-reads the topics from its offsets) by the retention rule."""
    return max(settings.kafka.topics.longest_life_ms() / 1000, settings.flink.restore_point_retention_days * 86_400)


def at_risk_since(settings: Settings, now: float | None = None,
                  restore_points: Sequence[float] | None = None) -> float:
    """The earliest erasure time a source can still undo.

    The topics hold messages sent within their longest life, and a restore point completed before an erasure
    holds the job's state and offsets from before it. ``restore_points`` are the completion times of the
    checkpoints and savepoints that exist (None when they could not be listed: the retention rule stands in,
    which misses only the latest restore point kept past it while the job is down).
    """
    now = time.time() if now is None else now
    if restore_points is None:
        return now - replay_window_s(settings)
    topics = now - settings.kafka.topics.longest_life_ms() / 1000
    return min([topics, *restore_points])


def _undoable(entries: list[dict[str, Any]], settings: Settings, now: float | None,
              restore_points: Sequence[float] | None) -> list[dict[str, Any]]:
    """The entries erased since :func:`at_risk_since`."""
    cutoff = at_risk_since(settings, now, restore_points)
    return [e for e in entries if e["erased_at"] >= cutoff]


def due(settings: Settings, now: float | None = None, restore_points: Sequence[float] | None = None) -> list[str]:
    """The customers whose erasure is to be applied again: erased since :func:`at_risk_since`."""
    return [e["customer_id"] for e in _undoable(erasures(settings), settings, now, restore_points)]


def forget_past(settings: Settings, now: float | None = None, restore_points: Sequence[float] | None = None) -> int:
    """Drop the entries no source can undo any more (erased before :func:`at_risk_since`); how many."""
    entries = erasures(settings)
    kept = _undoable(entries, settings, now, restore_points)
    if len(kept) < len(entries):
        write_private(ledger_path(settings), json.dumps(kept, indent=1))
    return len(entries) - len(kept)
