"""Persisted ingestion cursors: one small JSON file per source under a state dir, replaced atomically."""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loanrisk.errors import LoanRiskError

FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class CursorError(LoanRiskError):
    """A cursor file is unreadable or locked by another run."""


class CursorStore:
    """Loads and saves one source's cursor as ``<state_dir>/<name>.json`` (write temp, fsync, rename)."""

    def __init__(self, state_dir: Path | str, name: str) -> None:
        if not _NAME.match(name):
            raise ValueError(f"cursor name {name!r} must be 1-128 of [A-Za-z0-9_.-]")
        self.dir = Path(state_dir)
        self.name = name
        self.path = self.dir / f"{name}.json"

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when nothing has been saved yet."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CursorError(f"cannot read cursor {self.path}: {exc.strerror}") from None
        try:
            doc = json.loads(raw)
        except ValueError:
            raise CursorError(f"cursor {self.path} is not valid JSON; inspect it, or delete it to start "
                              "over (which re-sends everything)") from None
        if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION or not isinstance(doc.get("state"), dict):
            raise CursorError(f"cursor {self.path} has an unknown layout (expected version {FORMAT_VERSION})")
        state: dict[str, Any] = doc["state"]
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Replace the saved state atomically: readers see the old file or the new one, never a torn write."""
        self.dir.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": FORMAT_VERSION, "state": state}, sort_keys=True, separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{self.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock for one run, so two runs never advance the same cursor concurrently."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.dir / f"{self.name}.lock"
        with open(lock_path, "a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CursorError(f"another ingest run holds {lock_path}; wait for it to finish") from None
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
