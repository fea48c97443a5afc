"""RazorpayX client (GET /v1/transactions, /v1/payouts) and a time-windowed source of transaction events."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

from ingestion.apis import ApiSettings
from ingestion.apis.http import (
    ApiAuthError,
    ApiError,
    ApiRequestError,
    HttpStats,
    JsonHttpClient,
    MalformedResponse,
    Redactor,
    RetryPolicy,
    Sleep,
    TokenBucket,
)
from ingestion.apis.mapping import CustomerLookup, Unmappable, razorpayx_payout_event, razorpayx_transaction_event
from ingestion.apis.runner import Page

MAX_COUNT = 100
Resource = Literal["transactions", "payouts"]
RESOURCES: tuple[Resource, ...] = ("transactions", "payouts")


def razorpayx_error(status: int, payload: Any) -> ApiError:
    """Turn a Razorpay error body ({"error": {"code", "description", "field"}}) into the matching ApiError."""
    err = payload.get("error") if isinstance(payload, dict) else None
    code = str(err.get("code")) if isinstance(err, dict) else None
    description = (err or {}).get("description") if isinstance(err, dict) else None
    message = f"razorpayx: HTTP {status} {code or ''}: {description or 'no description'}".replace("  ", " ")
    if status in (401, 403):
        return ApiAuthError(f"{message}; check RAZORPAYX_KEY_ID and RAZORPAYX_KEY_SECRET (test vs live keys)",
                            status=status, code=code)
    field = err.get("field") if isinstance(err, dict) else None
    return ApiRequestError(message + (f" (field {field})" if field else ""), status=status, code=code)


class RazorpayXClient:
    """Basic-auth (key_id:key_secret) client for the RazorpayX list endpoints; secrets are redacted."""

    def __init__(self, key_id: str, key_secret: str, base_url: str, *, timeout_s: float = 10.0,
                 retry: RetryPolicy | None = None, rate_per_s: float = 4.0, burst: int = 4,
                 sleep: Sleep = time.sleep) -> None:
        self.http = JsonHttpClient("razorpayx", base_url, classify=razorpayx_error, auth=(key_id, key_secret),
                                   timeout_s=timeout_s, retry=retry, limiter=TokenBucket(rate_per_s, burst),
                                   redactor=Redactor(), sleep=sleep)

    @classmethod
    def from_settings(cls, settings: ApiSettings, **kwargs: Any) -> RazorpayXClient:
        """A client from RAZORPAYX_KEY_ID / RAZORPAYX_KEY_SECRET / RAZORPAYX_BASE_URL."""
        key_id, key_secret = settings.razorpayx_credentials()
        return cls(key_id, key_secret, settings.razorpayx_base_url, **kwargs)

    def __enter__(self) -> RazorpayXClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release connections."""
        self.http.close()

    def list(self, resource: Resource, *, account_number: str, from_ts: int | None = None,
             to_ts: int | None = None, count: int = MAX_COUNT, skip: int = 0) -> list[dict[str, Any]]:
        """One page of ``resource`` (newest first) created within [from_ts, to_ts] (unix seconds)."""
        if resource not in RESOURCES:
            raise ValueError(f"resource must be one of {RESOURCES}")
        if not 1 <= count <= MAX_COUNT or skip < 0:
            raise ValueError(f"count must be 1..{MAX_COUNT} and skip >= 0")
        params: dict[str, Any] = {"account_number": account_number, "count": count, "skip": skip}
        if from_ts is not None:
            params["from"] = from_ts
        if to_ts is not None:
            params["to"] = to_ts
        doc = self.http.request("GET", f"/v1/{resource}", params=params)
        items = doc.get("items")
        if doc.get("entity") != "collection" or not isinstance(items, list):
            raise MalformedResponse(f"razorpayx: /v1/{resource} did not return a collection with items")
        if not all(isinstance(item, dict) for item in items):
            raise MalformedResponse(f"razorpayx: /v1/{resource} returned items that are not objects")
        return items


class RazorpayXSource:
    """One business account's transactions (or processed payouts) as pages of events.

    Paging is ``skip``/``count`` inside a fixed window [from, to] (to = now - settle_s, fixed when the
    window opens), so records created meanwhile cannot shift the pages. State = {"from", "to", "skip",
    "boundary", "seen_at_to"}: after a window the next one starts at the old ``to`` (inclusive or not,
    whichever the API does) and ``boundary`` holds the ids already delivered at that second.
    """

    name = "razorpayx"
    may_rewind = False

    def __init__(self, client: RazorpayXClient, account_number: str, customers: CustomerLookup, *,
                 resource: Resource = "transactions", count: int = MAX_COUNT, since: int = 0, settle_s: int = 10,
                 clock: Callable[[], float] = time.time) -> None:
        if resource not in RESOURCES:
            raise ValueError(f"resource must be one of {RESOURCES}")
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(f"count must be 1..{MAX_COUNT}")
        self.client, self.account_number, self._customers = client, account_number, customers
        self.resource, self.count, self.since, self.settle_s, self._clock = resource, count, since, settle_s, clock

    @property
    def cursor_name(self) -> str:
        """Per account and resource; the account number appears only as a hash prefix."""
        return f"razorpayx-{self.resource}-" + hashlib.sha256(self.account_number.encode()).hexdigest()[:16]

    @property
    def http_stats(self) -> HttpStats:
        """Counters of the underlying HTTP client."""
        return self.client.http.stats

    def initial_state(self) -> dict[str, Any]:
        """Everything created since ``since``."""
        return {"from": self.since, "to": None, "skip": 0, "boundary": [], "seen_at_to": []}

    def _map(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.resource == "payouts":
            return razorpayx_payout_event(item, self.account_number, self._customers)
        return razorpayx_transaction_event(item, self._customers)

    def fetch(self, state: dict[str, Any]) -> Page:
        """The next page of the current window, opening a new window when none is open."""
        frm, to, skip = int(state["from"]), state.get("to"), int(state.get("skip", 0))
        boundary, seen_at_to = set(state.get("boundary", [])), list(state.get("seen_at_to", []))
        if to is None:
            to, skip, seen_at_to = int(self._clock()) - self.settle_s, 0, []
            if to < frm:
                return Page(events=[], next_state=dict(state), done=True)
        to = int(to)
        items = self.client.list(self.resource, account_number=self.account_number, from_ts=frm, to_ts=to,
                                 count=self.count, skip=skip)
        skipped: Counter[str] = Counter()
        events = []
        for item in items:
            item_id = str(item.get("id"))
            if item.get("created_at") == to:
                seen_at_to.append(item_id)
            if item_id in boundary:
                skipped["seen_in_previous_window"] += 1
                continue
            try:
                events.append(self._map(item))
            except Unmappable as exc:
                skipped[exc.reason] += 1
        if len(items) < self.count:  # window exhausted: the next one starts at this window's upper bound
            next_state = {"from": to, "to": None, "skip": 0, "boundary": sorted(set(seen_at_to)), "seen_at_to": []}
            # Caught up unless this window was opened long ago (a resumed run): then open the next one now.
            done = int(self._clock()) - self.settle_s - to <= max(self.settle_s, 1)
        else:
            next_state = {"from": frm, "to": to, "skip": skip + len(items), "boundary": sorted(boundary),
                          "seen_at_to": seen_at_to}
            done = False
        return Page(events=events, next_state=next_state, done=done, skipped=skipped, source_records=len(items))
