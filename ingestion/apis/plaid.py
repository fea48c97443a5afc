"""Plaid ``/transactions/sync`` client and the paged source that turns its updates into transaction events."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ingestion.apis import ApiSettings
from ingestion.apis.http import (
    ApiAuthError,
    ApiError,
    ApiRequestError,
    ApiUnavailable,
    HttpStats,
    JsonHttpClient,
    MalformedResponse,
    Redactor,
    RetryPolicy,
    Sleep,
    TokenBucket,
)
from ingestion.apis.mapping import CustomerLookup, Unmappable, plaid_transaction_event
from ingestion.apis.runner import Page

log = logging.getLogger(__name__)

SYNC_PATH = "/transactions/sync"
MAX_COUNT = 500
MUTATION_DURING_PAGINATION = "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"
_AUTH_CODES = {"INVALID_API_KEYS": "check PLAID_CLIENT_ID, PLAID_SECRET and PLAID_BASE_URL (sandbox vs production)",
               "UNAUTHORIZED_ENVIRONMENT": "these keys are not enabled for PLAID_BASE_URL's environment",
               "INVALID_ACCESS_TOKEN": "check the access token (PLAID_ACCESS_TOKEN) belongs to this environment",
               "ITEM_LOGIN_REQUIRED": "the user must re-authenticate this Item through Plaid Link"}


class PlaidMutationDuringPagination(ApiError):
    """Transaction data changed while paging; pagination must restart from the first cursor of the run."""


def plaid_error(status: int, payload: Any) -> ApiError:
    """Turn a Plaid error body (error_type/error_code/error_message) into the matching ApiError."""
    if not isinstance(payload, dict) or "error_code" not in payload:
        kind = ApiAuthError if status in (401, 403) else ApiRequestError
        return kind(f"plaid: HTTP {status} without a Plaid error body", status=status)
    code = str(payload.get("error_code"))
    message = f"plaid: {payload.get('error_type')}/{code}: {payload.get('error_message') or 'no message'}"
    if code == MUTATION_DURING_PAGINATION:
        return PlaidMutationDuringPagination(message, status=status, code=code)
    if code in _AUTH_CODES:
        return ApiAuthError(f"{message}; {_AUTH_CODES[code]}", status=status, code=code)
    return ApiRequestError(message, status=status, code=code)


@dataclass(frozen=True)
class SyncPage:
    """One /transactions/sync response."""

    added: list[dict[str, Any]]
    modified: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    next_cursor: str
    has_more: bool


class PlaidClient:
    """Calls /transactions/sync with client_id/secret in the JSON body; secrets are redacted from all text."""

    def __init__(self, client_id: str, secret: str, base_url: str, *, timeout_s: float = 10.0,
                 retry: RetryPolicy | None = None, rate_per_s: float = 2.0, burst: int = 4,
                 sleep: Sleep = time.sleep) -> None:
        self._client_id, self._secret = client_id, secret
        self.http = JsonHttpClient("plaid", base_url, classify=plaid_error, timeout_s=timeout_s, retry=retry,
                                   limiter=TokenBucket(rate_per_s, burst), redactor=Redactor([client_id, secret]),
                                   sleep=sleep)

    @classmethod
    def from_settings(cls, settings: ApiSettings, **kwargs: Any) -> PlaidClient:
        """A client from PLAID_CLIENT_ID / PLAID_SECRET / PLAID_BASE_URL (ConfigError when missing)."""
        client_id, secret = settings.plaid_credentials()
        return cls(client_id, secret, settings.plaid_base_url, **kwargs)

    def __enter__(self) -> PlaidClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release connections."""
        self.http.close()

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 100) -> SyncPage:
        """One page of updates since ``cursor`` ("" = from the beginning of the Item's history)."""
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(f"count must be 1..{MAX_COUNT}")
        self.http.redact.add(access_token)
        body: dict[str, Any] = {"client_id": self._client_id, "secret": self._secret,
                                "access_token": access_token, "count": count}
        if cursor:
            body["cursor"] = cursor
        doc = self.http.request("POST", SYNC_PATH, json_body=body)
        try:
            lists = [doc[key] for key in ("added", "modified", "removed")]
            next_cursor, has_more = doc["next_cursor"], doc["has_more"]
        except KeyError as exc:
            raise MalformedResponse(f"plaid: /transactions/sync response lacks {exc.args[0]!r}") from None
        if (not all(isinstance(x, list) for x in lists) or not isinstance(next_cursor, str)
                or not isinstance(has_more, bool)):
            raise MalformedResponse("plaid: /transactions/sync response has fields of the wrong type")
        return SyncPage(added=lists[0], modified=lists[1], removed=lists[2], next_cursor=next_cursor,
                        has_more=has_more)


class PlaidSource:
    """One Item's transactions as pages of events; state = {"cursor", "run_start"}.

    ``run_start`` is the cursor this pagination run began with (kept until ``has_more`` is false), so a
    TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION error restarts from it, as Plaid requires, even after the
    process was restarted midway. Only ``added`` non-pending transactions become events: the contract has
    no correction or deletion event, so ``modified``/``removed`` are counted, not sent.
    """

    name = "plaid"
    may_rewind = True  # a mutation during pagination rewinds to the run's first cursor

    def __init__(self, client: PlaidClient, access_token: str, customers: CustomerLookup, *, count: int = 100,
                 max_restarts: int = 3) -> None:
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(f"count must be 1..{MAX_COUNT}")
        self.client, self._token, self._customers = client, access_token, customers
        self.count, self.max_restarts = count, max_restarts
        self.restarts = 0  # total, for reports
        self._restarts_this_run = 0  # since the pagination run began; reset when has_more turns false

    @property
    def cursor_name(self) -> str:
        """Per-Item cursor file stem; the access token appears only as a hash prefix."""
        return "plaid-" + hashlib.sha256(self._token.encode()).hexdigest()[:16]

    @property
    def http_stats(self) -> HttpStats:
        """Counters of the underlying HTTP client."""
        return self.client.http.stats

    def initial_state(self) -> dict[str, Any]:
        """Start of the Item's history."""
        return {"cursor": "", "run_start": None}

    def fetch(self, state: dict[str, Any]) -> Page:
        """The page after ``state['cursor']``, restarting the run on a mutation-during-pagination error."""
        cursor = str(state.get("cursor") or "")
        run_start = state.get("run_start")
        run_start = cursor if run_start is None else str(run_start)
        while True:
            try:
                sync = self.client.transactions_sync(self._token, cursor, self.count)
                break
            except PlaidMutationDuringPagination:
                self._restarts_this_run += 1
                self.restarts += 1
                if self._restarts_this_run > self.max_restarts:
                    raise ApiUnavailable(f"plaid: transaction data kept changing during pagination "
                                         f"({self.max_restarts} restarts); run again later") from None
                log.warning("plaid: data changed during pagination; restarting from the run's first cursor")
                cursor = run_start
        skipped: Counter[str] = Counter()
        events = []
        for txn in sync.added:
            try:
                events.append(plaid_transaction_event(txn, self._customers))
            except Unmappable as exc:
                skipped[exc.reason] += 1
        skipped.update({"modified": len(sync.modified), "removed": len(sync.removed)})
        if not sync.has_more:
            self._restarts_this_run = 0
        next_state = {"cursor": sync.next_cursor, "run_start": run_start if sync.has_more else None}
        return Page(events=events, next_state=next_state, done=not sync.has_more, skipped=+skipped,
                    source_records=len(sync.added) + len(sync.modified) + len(sync.removed))
