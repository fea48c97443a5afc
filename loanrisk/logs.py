"""How our processes log: one setup for riskctl, the Prefect flows, the supervisor and the exporters.

``stack.log_format`` picks the shape of every line on stderr: ``text`` for people, ``json`` for a log
shipper (one object per line with time, level, logger and message, plus the traceback when there is
one). Command output meant for the user (tables, results) stays on stdout and is not logging.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from types import TracebackType
from typing import IO, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message[, exception]."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configured_format() -> LogFormat:
    """``stack.log_format`` from the settings; text when the settings do not load (the command reports why)."""
    from loanrisk.errors import ConfigError
    from loanrisk.settings import get_settings
    try:
        return get_settings().stack.log_format
    except ConfigError:
        return "text"


def setup_logging(level: int | str = logging.INFO, log_format: LogFormat | None = None,
                  stream: IO[str] | None = None) -> None:
    """Send every logger's records (ours, libraries', warnings, uncaught exceptions) to ``stream`` (stderr).

    ``log_format`` defaults to ``stack.log_format``. Safe to call again: the last call wins.
    """
    fmt = log_format or configured_format()
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, got {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    # Ours from an earlier call, and any console handler a library put on the root (Prefect does, on import).
    for old in [h for h in root.handlers if isinstance(h, logging.StreamHandler)
                and getattr(h, "stream", None) in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("loanrisk").critical("uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, tb))
