"""The erasure ledger: which customers were erased and when, so an erasure is applied again while a source could
bring their rows back (a job resumed from an earlier checkpoint re-reads Kafka from that checkpoint's offsets; a
replay re-sends history). Kept in <stack.state_dir>/erasures.json, 0600: the ids of erased customers, and nothing
else of them, is what honouring the request needs."""

from __future__ import annotations

import json
import time
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
    """How long after an erasure a source can still hold the customer's events: the topics' longest life, or the
    oldest checkpoint or savepoint a job can be resumed from (which re-reads the topics from its offsets)."""
    return max(settings.kafka.topics.longest_life_ms() / 1000, settings.flink.restore_point_retention_days * 86_400)


def due(settings: Settings, now: float | None = None) -> list[str]:
    """The customers whose erasure is to be applied again: erased within the replay window."""
    cutoff = (time.time() if now is None else now) - replay_window_s(settings)
    return [e["customer_id"] for e in erasures(settings) if e["erased_at"] >= cutoff]
