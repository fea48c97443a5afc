"""The serving database as the scoring API uses it: behaviour windows, API keys and idempotency records.

:class:`ServingStore` is what the service needs; :class:`PostgresStore` is its implementation on the
serving PostgreSQL database, and every SQL statement of the API is in this module. Tables are declared
in contracts/tables.py (CUSTOMER_BEHAVIOUR_WINDOWS, written by the job; API_TABLES, created here from
sql/serving/api_tables.sql on first contact).

A database that does not answer is :class:`StoreUnavailable`. After one failure the store answers
:class:`StoreUnavailable` at once for ``api.store_retry_s`` instead of making every request wait for
another connect timeout.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol, TypeVar

from contracts.feature_formulas import BEHAVIOUR_WINDOW_COLUMNS
from contracts.tables import API_IDEMPOTENCY, API_KEYS, CUSTOMER_BEHAVIOUR_WINDOWS
from loanrisk.errors import LoanRiskError
from loanrisk.settings import ApiSettings, PostgresSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1)  # behaviour_as_of is a TIMESTAMP without zone, in UTC

WindowKey = tuple[str, int]  # (customer_id, behaviour_as_of in epoch milliseconds)


class StoreUnavailable(LoanRiskError):
    """The serving database cannot be reached, or did not answer in time."""


@dataclass(frozen=True)
class StoredKey:
    """One client's API key as stored: never the key itself, only its salted hash."""

    client: str
    key_id: str
    key_salt: str
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Claim:
    """What an Idempotency-Key found: a fresh claim, a stored answer, a request still running, or another request."""

    outcome: Literal["claimed", "replay", "in_progress", "mismatch"]
    claim_id: str | None = None
    status_code: int | None = None
    response: str | None = None


class ServingStore(Protocol):
    """What the scoring API reads and writes in the serving database."""

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    def behaviour_windows(self, wanted: Sequence[WindowKey]) -> dict[WindowKey, dict[str, float]]:
        """The customer_behaviour_windows rows (BEHAVIOUR_WINDOW_COLUMNS) at these keys, in one round trip."""

    def key_by_id(self, key_id: str) -> StoredKey | None:
        """The key whose public id is ``key_id``."""

    def add_key(self, client: str, key_id: str, key_salt: str, key_hash: str) -> bool:
        """Store ``client``'s key; False when the client already has a key that is not revoked."""

    def keys(self) -> list[StoredKey]:
        """Every client's key, by client."""

    def revoke_key(self, client: str) -> bool:
        """Revoke ``client``'s key; False when it has none that is not revoked."""

    def claim(self, client: str, key: str, request_hash: str, claim_id: str, ttl_s: int, stale_s: float) -> Claim:
        """Claim (client, key) for a new request, unless an unexpired record holds it.

        A ``pending`` record older than ``stale_s`` belongs to a request that died: it is taken over.
        """

    def finish(self, client: str, key: str, claim_id: str, status_code: int, response: str) -> None:
        """Store the answer of the claim ``claim_id`` (nothing when the claim was taken over since)."""

    def release(self, client: str, key: str, claim_id: str) -> None:
        """Drop the claim ``claim_id`` (its request failed: a repeat runs again)."""

    def purge_expired(self) -> int:
        """Delete expired idempotency records; how many."""


def as_of_ms(value: datetime) -> int:
    """A behaviour_as_of (TIMESTAMP in UTC) as epoch milliseconds."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return (value - _EPOCH) // timedelta(milliseconds=1)


def as_of_timestamp(ms: int) -> datetime:
    """Epoch milliseconds as the naive UTC datetime PostgreSQL's TIMESTAMP holds."""
    return _EPOCH + timedelta(milliseconds=ms)


def _names(table: Any, wanted: Sequence[str]) -> list[str]:
    """``wanted`` after checking each is a column of ``table`` (a declaration change fails here, not in SQL)."""
    names = [c.name for c in table.columns]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise ValueError(f"{table.name} has no columns {unknown}")
    return list(wanted)


# --- The SQL, built from the table declarations ---------------------------------------------------------------

_WINDOW_COLUMNS = _names(CUSTOMER_BEHAVIOUR_WINDOWS, ["customer_id", "behaviour_as_of", *BEHAVIOUR_WINDOW_COLUMNS])
# Every key pair in one statement: the arrays are unnested side by side into (customer_id, behaviour_as_of).
BEHAVIOUR_SQL = (
    f"SELECT {', '.join('w.' + c for c in _WINDOW_COLUMNS)} FROM {CUSTOMER_BEHAVIOUR_WINDOWS.qualified_name} AS w "
    "JOIN unnest(%s::text[], %s::timestamp[]) AS k(customer_id, behaviour_as_of) "
    "ON w.customer_id = k.customer_id AND w.behaviour_as_of = k.behaviour_as_of")

_KEY_COLUMNS = _names(API_KEYS, ["client", "key_id", "key_salt", "key_hash", "created_at", "revoked_at"])
_KEYS = API_KEYS.qualified_name
KEY_BY_ID_SQL = f"SELECT {', '.join(_KEY_COLUMNS)} FROM {_KEYS} WHERE key_id = %s"
KEYS_SQL = f"SELECT {', '.join(_KEY_COLUMNS)} FROM {_KEYS} ORDER BY client"
# A client has one key: a new one replaces it only once it is revoked.
ADD_KEY_SQL = (
    f"INSERT INTO {_KEYS} AS k (client, key_id, key_salt, key_hash) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (client) DO UPDATE SET key_id = EXCLUDED.key_id, key_salt = EXCLUDED.key_salt, "
    "key_hash = EXCLUDED.key_hash, created_at = now(), revoked_at = NULL WHERE k.revoked_at IS NOT NULL "
    "RETURNING client")
REVOKE_KEY_SQL = f"UPDATE {_KEYS} SET revoked_at = now() WHERE client = %s AND revoked_at IS NULL RETURNING client"

_IDEM = API_IDEMPOTENCY.qualified_name
_names(API_IDEMPOTENCY, ["client", "idempotency_key", "request_hash", "claim_id", "state", "status_code", "response",
                         "created_at", "expires_at"])
# Insert a pending record, or take over one that expired or whose request died; no row back: someone holds it.
CLAIM_SQL = (
    f"INSERT INTO {_IDEM} AS i (client, idempotency_key, request_hash, claim_id, state, expires_at) "
    "VALUES (%(client)s, %(key)s, %(hash)s, %(claim)s, 'pending', now() + %(ttl)s::double precision * interval '1 second') "
    "ON CONFLICT (client, idempotency_key) DO UPDATE SET request_hash = EXCLUDED.request_hash, "
    "claim_id = EXCLUDED.claim_id, state = 'pending', status_code = NULL, response = NULL, created_at = now(), "
    "expires_at = EXCLUDED.expires_at "
    "WHERE i.expires_at <= now() "
    "OR (i.state = 'pending' AND i.created_at <= now() - %(stale)s::double precision * interval '1 second') "
    "RETURNING claim_id")
CLAIMED_SQL = (f"SELECT request_hash, state, status_code, response FROM {_IDEM} "
               "WHERE client = %s AND idempotency_key = %s AND expires_at > now()")
FINISH_SQL = (f"UPDATE {_IDEM} SET state = 'done', status_code = %s, response = %s "
              "WHERE client = %s AND idempotency_key = %s AND claim_id = %s")
RELEASE_SQL = f"DELETE FROM {_IDEM} WHERE client = %s AND idempotency_key = %s AND claim_id = %s"
PURGE_SQL = f"DELETE FROM {_IDEM} WHERE expires_at <= now()"


def read_behaviour_windows(conn: Any, wanted: Sequence[WindowKey]) -> dict[WindowKey, dict[str, float]]:
    """The customer_behaviour_windows rows (BEHAVIOUR_WINDOW_COLUMNS) at these keys, in one statement on ``conn``."""
    keys = list(dict.fromkeys(wanted))
    rows = conn.execute(BEHAVIOUR_SQL, ([c for c, _ in keys], [as_of_timestamp(ms) for _, ms in keys])).fetchall()
    return {(row[0], as_of_ms(row[1])): dict(zip(BEHAVIOUR_WINDOW_COLUMNS, (float(v) for v in row[2:])))
            for row in rows}


def claim_from_record(record: tuple[Any, ...] | None, request_hash: str) -> Claim | None:
    """The Claim an existing record (request_hash, state, status_code, response) gives a request; None: no record."""
    if record is None:
        return None
    stored_hash, state, status_code, response = record
    if stored_hash != request_hash:
        return Claim("mismatch")
    if state != "done":
        return Claim("in_progress")
    return Claim("replay", status_code=int(status_code), response=str(response))


class PostgresStore:
    """:class:`ServingStore` on the serving PostgreSQL database, through a small pool of autocommit connections."""

    def __init__(self, postgres: PostgresSettings, api: ApiSettings, *, clock: Callable[[], float] = time.monotonic,
                 ddl: Callable[[], str] | None = None) -> None:
        self._dsn = postgres.dsn(postgres.serving_db)
        self._where = f"{postgres.host}:{postgres.port}/{postgres.serving_db}"
        self._connect_timeout = api.store_connect_timeout_s
        self._statement_timeout_ms = max(1, int(api.request_timeout_s * 1000))
        self._retry_s = api.store_retry_s
        self._clock = clock
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(api.store_pool_size)
        self._wait_s = api.request_timeout_s
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_reason = ""
        self._ddl = ddl
        self._tables_ready = False

    # -- connections ---------------------------------------------------------------------------------------------
    def _connect(self) -> Any:
        import psycopg

        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._connect_timeout,
                                   options=f"-c statement_timeout={self._statement_timeout_ms}")
        except psycopg.Error as exc:
            raise self._down(f"cannot connect: {_first_line(exc)}") from None
        if not self._tables_ready:
            self._create_tables(conn)
        return conn

    def _create_tables(self, conn: Any) -> None:
        """Create the API's tables once per process (CREATE ... IF NOT EXISTS)."""
        import psycopg

        from loanrisk.serving import api_ddl, run_ddl
        if self._ddl is None:
            self._ddl = api_ddl
        try:
            run_ddl(conn, self._ddl())
        except psycopg.Error as exc:
            conn.close()
            raise StoreUnavailable(f"serving database {self._where}: cannot create the scoring API's tables "
                                   f"({_first_line(exc)}); the API's PostgreSQL user needs CREATE on the "
                                   "database, or apply sql/serving/api_tables.sql as its owner") from None
        self._tables_ready = True

    def _down(self, reason: str) -> StoreUnavailable:
        """Remember the failure (requests answer at once for store_retry_s) and return the error to raise."""
        with self._lock:
            self._down_until = self._clock() + self._retry_s
            self._down_reason = f"serving database {self._where} unreachable: {reason}"
        log.warning("%s", self._down_reason)
        return StoreUnavailable(self._down_reason)

    def _check_not_down(self) -> None:
        with self._lock:
            if self._clock() < self._down_until:
                raise StoreUnavailable(self._down_reason)

    @contextmanager
    def _connection(self) -> Iterator[tuple[Any, bool]]:
        """(a connection, whether it came from the pool) for one statement; the slot is returned afterwards."""
        self._check_not_down()
        if not self._slots.acquire(timeout=self._wait_s):
            raise StoreUnavailable(f"serving database {self._where}: all connections busy for {self._wait_s:g}s")
        try:
            try:
                conn, pooled = self._idle.get_nowait(), True
            except queue.Empty:
                conn, pooled = self._connect(), False
            try:
                yield conn, pooled
            finally:
                if conn.closed or conn.broken:
                    conn.close()
                else:
                    self._idle.put(conn)
        finally:
            self._slots.release()

    def _run(self, work: Callable[[Any], T]) -> T:
        """``work(connection)``; a pooled connection found dead is replaced once, other connection errors are down."""
        import psycopg

        for _attempt in range(2):
            with self._connection() as (conn, pooled):
                try:
                    return work(conn)
                except psycopg.errors.UndefinedTable as exc:
                    raise StoreUnavailable(f"serving database {self._where}: {_first_line(exc)}; the risk job "
                                           "creates the serving tables (riskctl job submit)") from None
                except psycopg.OperationalError as exc:
                    if pooled and conn.broken:
                        continue  # the server restarted since this connection was opened: try a new one
                    if isinstance(exc, psycopg.errors.QueryCanceled):
                        raise StoreUnavailable(f"serving database {self._where} did not answer within "
                                               f"{self._statement_timeout_ms} ms") from None
                    raise self._down(_first_line(exc)) from None
        raise self._down("connections keep breaking")

    def close(self) -> None:
        """Close the idle connections."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    # -- ServingStore ---------------------------------------------------------------------------------------------
    def ping(self) -> None:
        self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    def behaviour_windows(self, wanted: Sequence[WindowKey]) -> dict[WindowKey, dict[str, float]]:
        if not wanted:
            return {}
        return self._run(lambda conn: read_behaviour_windows(conn, wanted))

    def key_by_id(self, key_id: str) -> StoredKey | None:
        row = self._run(lambda conn: conn.execute(KEY_BY_ID_SQL, (key_id,)).fetchone())
        return None if row is None else StoredKey(*row)

    def add_key(self, client: str, key_id: str, key_salt: str, key_hash: str) -> bool:
        row = self._run(lambda conn: conn.execute(ADD_KEY_SQL, (client, key_id, key_salt, key_hash)).fetchone())
        return row is not None

    def keys(self) -> list[StoredKey]:
        return [StoredKey(*row) for row in self._run(lambda conn: conn.execute(KEYS_SQL).fetchall())]

    def revoke_key(self, client: str) -> bool:
        return self._run(lambda conn: conn.execute(REVOKE_KEY_SQL, (client,)).fetchone()) is not None

    def claim(self, client: str, key: str, request_hash: str, claim_id: str, ttl_s: int, stale_s: float) -> Claim:
        params = {"client": client, "key": key, "hash": request_hash, "claim": claim_id, "ttl": ttl_s,
                  "stale": stale_s}
        for _attempt in range(3):  # the record seen as taken can expire between the two statements
            if self._run(lambda conn: conn.execute(CLAIM_SQL, params).fetchone()) is not None:
                return Claim("claimed", claim_id=claim_id)
            record = self._run(lambda conn: conn.execute(CLAIMED_SQL, (client, key)).fetchone())
            found = claim_from_record(record, request_hash)
            if found is not None:
                return found
        return Claim("in_progress")

    def finish(self, client: str, key: str, claim_id: str, status_code: int, response: str) -> None:
        self._run(lambda conn: conn.execute(FINISH_SQL, (status_code, response, client, key, claim_id)))

    def release(self, client: str, key: str, claim_id: str) -> None:
        self._run(lambda conn: conn.execute(RELEASE_SQL, (client, key, claim_id)))

    def purge_expired(self) -> int:
        return int(self._run(lambda conn: conn.execute(PURGE_SQL).rowcount))


def _first_line(exc: BaseException) -> str:
    """The first line of a driver error (its detail lines may quote values)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
