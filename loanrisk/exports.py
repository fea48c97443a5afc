"""The ledger of files the platform wrote with people's data outside its stores (`riskctl dlq export --out`), so
an erasure request can find them (erasure/customer.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from loanrisk.files import write_private
from loanrisk.settings import Settings


def ledger_path(settings: Settings) -> Path:
    """Where the ledger lives: the stack's state folder, beside the other private files."""
    return settings.state_dir / "exports.json"


def exported_files(settings: Settings) -> list[dict[str, Any]]:
    """Every recorded export ({"path", "written_at", "records", "what"}), oldest first."""
    path = ledger_path(settings)
    return list(json.loads(path.read_text())) if path.is_file() else []


def record_export(settings: Settings, path: Path, records: int, what: str) -> None:
    """Add ``path`` to the ledger (once per path: a file written again keeps one entry, with its latest time)."""
    target = str(path.resolve())
    kept = [e for e in exported_files(settings) if e["path"] != target]
    kept.append({"path": target, "written_at": time.time(), "records": records, "what": what})
    write_private(ledger_path(settings), json.dumps(kept, indent=1))
