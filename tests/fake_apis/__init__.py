"""Local fake HTTP APIs for tests: a threaded stdlib server on 127.0.0.1 with scriptable faults."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or before) answering one request.

    ``status`` None with ``delay_s`` = a slow but otherwise normal answer; ``body`` overrides the JSON
    error body with raw bytes (malformed JSON); ``retry_after`` sets the Retry-After header.
    """

    status: int | None = 503
    retry_after: str | None = None
    body: bytes | None = None
    delay_s: float = 0.0

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1") -> Fault:
        """HTTP 429 with Retry-After (seconds or an HTTP-date)."""
        return cls(status=429, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """HTTP 500/502/503/504 with the API's error body."""
        return cls(status=status)

    @classmethod
    def malformed(cls, status: int = 200) -> Fault:
        """A truncated JSON body with the given status."""
        return cls(status=status, body=b'{"entity": "collection", "items": [{"id": ')

    @classmethod
    def slow(cls, delay_s: float) -> Fault:
        """Answer normally, but only after ``delay_s`` (longer than the client timeout = a timeout)."""
        return cls(status=None, delay_s=delay_s)


@dataclass
class Recorded:
    """One request as the server saw it, and the status it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0

    def json(self) -> Any:
        """The request body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Reply:
    """A handler's answer."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FakeApiServer:
    """Base class: subclasses implement ``route`` and ``error_body``; faults are consumed one per request."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._faults: deque[tuple[str | None, Fault]] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------------------
    def inject(self, fault: Fault, *, times: int = 1, path: str | None = None) -> None:
        """Apply ``fault`` to the next ``times`` requests (to ``path`` only, when given)."""
        with self._lock:
            self._faults.extend((path, fault) for _ in range(times))

    def hits(self, path: str | None = None) -> int:
        """Requests received (to ``path``), faulted or not."""
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            for i, (only, fault) in enumerate(self._faults):
                if only is None or only == path:
                    del self._faults[i]
                    return fault
        return None

    # -- to implement ----------------------------------------------------------------------------
    def route(self, req: Recorded) -> Reply:
        """Answer a request that no fault intercepted."""
        raise NotImplementedError

    def error_body(self, status: int) -> Any:
        """The API's JSON error body for an injected ``status``."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port> of the running server."""
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = False  # server_close() joins request threads: nothing outlives stop()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        name=f"{type(self).__name__}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake slow handlers, stop serving, join every thread."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd, self._thread = None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch --------------------------------------------------------------------------------
    def _dispatch(self, req: Recorded) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            self.requests.append(req)
        fault = self._next_fault(req.path)
        if fault is not None and fault.delay_s:
            self._stopping.wait(fault.delay_s)
        if fault is not None and fault.status is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            body = fault.body if fault.body is not None else json.dumps(self.error_body(fault.status)).encode()
            return fault.status, body, headers
        reply = self.route(req)
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        return reply.status, body, reply.headers


def _handler_for(fake: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # headers and body leave in one segment (no delayed-ACK stalls)
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            req = Recorded(method=self.command, path=parts.path, query=parse_qs(parts.query),
                           headers={k.lower(): v for k, v in self.headers.items()},
                           body=self.rfile.read(length) if length else b"")
            status, body, headers = fake._dispatch(req)
            req.status = status
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (timeout); nothing to answer

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler

