"""A fake Plaid API: POST /transactions/sync with cursors, has_more paging and mutation-during-pagination.

Model: each Item (access token) has an append-only log of updates (added/modified/removed). A cursor
encodes a log position, the data generation when it was issued, and whether it ended a run (has_more
false). Changing data bumps the generation; continuing with an *intermediate* cursor of an older generation
fails with TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION, while the first cursor of a run stays valid.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fake_apis import FakeApiServer, Recorded, Reply

SYNC = "/transactions/sync"


def make_transaction(n: int, *, account_id: str = "acc-checking", amount: float = 12.34, currency: str | None = "USD",
                     day: str = "2024-03-01", pending: bool = False, primary: str = "FOOD_AND_DRINK",
                     detailed: str = "FOOD_AND_DRINK_RESTAURANT", name: str | None = None,
                     datetime_: str | None = None) -> dict[str, Any]:
    """A Plaid transaction object as /transactions/sync returns it (amount positive = money out)."""
    return {
        "transaction_id": f"txn-{n:05d}", "account_id": account_id, "amount": amount,
        "iso_currency_code": currency, "unofficial_currency_code": None if currency else "BTC",
        "date": day, "datetime": datetime_, "authorized_date": day, "authorized_datetime": None,
        "name": name or f"Merchant {n}", "merchant_name": name or f"Merchant {n}", "pending": pending,
        "pending_transaction_id": None, "payment_channel": "in store", "transaction_type": "place",
        "personal_finance_category": {"primary": primary, "detailed": detailed, "confidence_level": "HIGH"},
    }


@dataclass
class _Item:
    log: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    generation: int = 0


def _error(error_type: str, code: str, message: str) -> dict[str, Any]:
    return {"error_type": error_type, "error_code": code, "error_message": message, "display_message": None,
            "request_id": uuid.uuid4().hex[:15]}


class FakePlaid(FakeApiServer):
    """Plaid's /transactions/sync for scripted Items; credentials in the body or PLAID-* headers."""

    def __init__(self, client_id: str = "client-id-test", secret: str = "plaid-secret-test") -> None:
        super().__init__()
        self.client_id, self.secret = client_id, secret
        self.items: dict[str, _Item] = {}
        self._data_lock = threading.Lock()
        self._hooks: dict[int, Callable[[], None]] = {}

    # -- scripting -------------------------------------------------------------------------------
    def add_item(self, access_token: str) -> None:
        """Register an Item with no transactions yet."""
        with self._data_lock:
            self.items.setdefault(access_token, _Item())

    def add(self, access_token: str, *txns: dict[str, Any]) -> None:
        """New transactions (appear in ``added``); bumps the data generation."""
        self._append(access_token, [("added", t) for t in txns])

    def modify(self, access_token: str, txn: dict[str, Any]) -> None:
        """A changed transaction (appears in ``modified``)."""
        self._append(access_token, [("modified", txn)])

    def remove(self, access_token: str, transaction_id: str, account_id: str = "acc-checking") -> None:
        """A removed transaction (appears in ``removed``)."""
        self._append(access_token, [("removed", {"transaction_id": transaction_id, "account_id": account_id})])

    def after_sync_request(self, n: int, hook: Callable[[], None]) -> None:
        """Run ``hook`` right after answering the n-th (1-based) /transactions/sync request."""
        self._hooks[n] = hook

    def _append(self, access_token: str, entries: list[tuple[str, dict[str, Any]]]) -> None:
        with self._data_lock:
            item = self.items.setdefault(access_token, _Item())
            item.log.extend(entries)
            item.generation += 1

    # -- protocol --------------------------------------------------------------------------------
    @staticmethod
    def _encode(pos: int, generation: int, final: bool) -> str:
        raw = json.dumps({"p": pos, "g": generation, "f": final}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _decode(cursor: str) -> tuple[int, int, bool]:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return int(doc["p"]), int(doc["g"]), bool(doc["f"])

    def error_body(self, status: int) -> Any:
        if status == 429:
            return _error("RATE_LIMIT_EXCEEDED", "TRANSACTIONS_SYNC_LIMIT",
                          "rate limit exceeded for attempts to access this item. please try again later")
        if status == 503:
            return _error("API_ERROR", "PLANNED_MAINTENANCE", "the Plaid API is temporarily unavailable")
        return _error("API_ERROR", "INTERNAL_SERVER_ERROR", "an unexpected error occurred")

    def route(self, req: Recorded) -> Reply:
        if req.path != SYNC or req.method != "POST":
            return Reply(404, _error("INVALID_REQUEST", "NOT_FOUND", "not found"))
        reply = self._sync(req)
        count = self.hits(SYNC)
        hook = self._hooks.pop(count, None)
        if hook is not None:
            hook()
        return reply

    def _sync(self, req: Recorded) -> Reply:
        try:
            body = json.loads(req.body or b"null")
        except ValueError:
            return Reply(400, _error("INVALID_REQUEST", "INVALID_BODY", "body could not be parsed as JSON"))
        if not isinstance(body, dict):
            return Reply(400, _error("INVALID_REQUEST", "INVALID_BODY", "body could not be parsed as JSON"))
        client_id = body.get("client_id") or req.headers.get("plaid-client-id")
        secret = body.get("secret") or req.headers.get("plaid-secret")
        if client_id != self.client_id or secret != self.secret:
            return Reply(400, _error("INVALID_INPUT", "INVALID_API_KEYS", "invalid client_id or secret provided"))
        count = body.get("count", 100)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 500:
            return Reply(400, _error("INVALID_REQUEST", "INVALID_FIELD", "count must be an integer from 1 to 500"))
        with self._data_lock:
            item = self.items.get(str(body.get("access_token")))
            if item is None:
                return Reply(400, _error("INVALID_INPUT", "INVALID_ACCESS_TOKEN",
                                         "could not find matching access token"))
            cursor = body.get("cursor") or ""
            pos = 0
            if cursor:
                try:
                    pos, generation, final = self._decode(str(cursor))
                except (ValueError, KeyError, TypeError):
                    return Reply(400, _error("INVALID_REQUEST", "INVALID_FIELD", "cursor is not valid"))
                if not final and generation != item.generation:
                    return Reply(400, _error(
                        "TRANSACTIONS_ERROR", "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
                        "Underlying transaction data changed since last page was fetched. "
                        "Please restart pagination from last update."))
            window = item.log[pos:pos + count]
            end = pos + len(window)
            has_more = end < len(item.log)
            doc = {
                "accounts": [], "added": [t for k, t in window if k == "added"],
                "modified": [t for k, t in window if k == "modified"],
                "removed": [t for k, t in window if k == "removed"],
                "next_cursor": self._encode(end, item.generation, not has_more) if item.log else "",
                "has_more": has_more, "request_id": uuid.uuid4().hex[:15],
                "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE",
            }
        return Reply(200, doc)
