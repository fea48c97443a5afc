"""A file that never ends: a named pipe fed with zeros, which counts how much its reader took before closing it.

A reader that reads a whole file into memory would read it up to ``limit`` bytes (then end of file), so a test
tells a capped reader from an unbounded one by ``written`` instead of by running out of memory.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

CHUNK = 64 * 1024


class EndlessPipe:
    """A FIFO at ``path`` written with zeros by a thread until its reader closes it or ``limit`` bytes went in."""

    def __init__(self, path: Path, limit: int = 64 << 20) -> None:
        self.path, self.limit = path, limit
        self.written = 0
        self._thread = threading.Thread(target=self._feed, daemon=True)

    def _feed(self) -> None:
        zeros = bytes(CHUNK)
        try:
            with open(self.path, "wb", buffering=0) as pipe:  # blocks until a reader opens the pipe
                while self.written < self.limit:
                    self.written += pipe.write(zeros) or 0
        except BrokenPipeError:  # the reader closed it: what it did not take stays unwritten
            pass

    def __enter__(self) -> EndlessPipe:
        os.mkfifo(self.path)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._thread.is_alive():  # no reader came, or one is still open: open and close the read end to end it
            try:
                os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
            except OSError:
                pass
        self._thread.join(10)
