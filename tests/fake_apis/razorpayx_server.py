"""A fake RazorpayX API: GET /v1/transactions and /v1/payouts with basic auth, count/skip and from/to."""

from __future__ import annotations

import base64
import threading
from typing import Any

from tests.fake_apis import FakeApiServer, Recorded, Reply

ACCOUNT = "7878780080316316"
PATHS = {"/v1/transactions": "transactions", "/v1/payouts": "payouts"}


def _error(code: str, description: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "description": description, "source": "NA", "step": "NA", "reason": "NA",
                      "metadata": {}, "field": field}}


def make_transaction(n: int, created_at: int, *, credit: int = 0, debit: int = 0, balance: int = 1_000_000,
                     account_number: str = ACCOUNT, source_entity: str | None = None) -> dict[str, Any]:
    """A RazorpayX account-statement transaction (amounts in paise); a credit is a bank transfer in."""
    entity = source_entity or ("bank_transfer" if credit else "payout")
    source: dict[str, Any] = {"id": f"{'bt' if entity == 'bank_transfer' else 'pout'}_{n:014d}", "entity": entity,
                              "amount": credit or debit}
    if entity == "bank_transfer":
        source.update({"payer_name": f"Payer {n}", "mode": "NEFT"})
    else:
        source.update({"fund_account_id": f"fa_{n:014d}", "status": "processed", "mode": "IMPS",
                       "purpose": "payout"})
    return {"id": f"txn_{n:014d}", "entity": "transaction", "account_number": account_number,
            "amount": credit or debit, "currency": "INR", "credit": credit, "debit": debit, "balance": balance,
            "source": source, "created_at": created_at}


def make_payout(n: int, created_at: int, *, amount: int = 50_000, status: str = "processed",
                purpose: str = "payout") -> dict[str, Any]:
    """A RazorpayX payout object (amount in paise)."""
    return {"id": f"pout_{n:014d}", "entity": "payout", "fund_account_id": f"fa_{n:014d}", "amount": amount,
            "currency": "INR", "notes": {}, "fees": 590, "tax": 90, "status": status, "purpose": purpose,
            "utr": None, "mode": "IMPS", "reference_id": None, "narration": f"Vendor {n}",
            "batch_id": None, "failure_reason": None, "created_at": created_at}


class FakeRazorpayX(FakeApiServer):
    """The two list endpoints of one RazorpayX business account (or several, via account_number)."""

    def __init__(self, key_id: str = "rzp_test_key123", key_secret: str = "rzp-test-secret-456",
                 account_number: str = ACCOUNT) -> None:
        super().__init__()
        self.key_id, self.key_secret, self.account_number = key_id, key_secret, account_number
        self.data: dict[str, list[dict[str, Any]]] = {"transactions": [], "payouts": []}
        self._data_lock = threading.Lock()

    def add_transactions(self, *items: dict[str, Any]) -> None:
        """Append account-statement transactions."""
        with self._data_lock:
            self.data["transactions"].extend(items)

    def add_payouts(self, *items: dict[str, Any]) -> None:
        """Append payouts (for ``self.account_number``)."""
        with self._data_lock:
            self.data["payouts"].extend(items)

    def error_body(self, status: int) -> Any:
        if status == 429:
            return _error("BAD_REQUEST_ERROR", "Too many requests")
        if status >= 500:
            return _error("SERVER_ERROR", "The server encountered an error. The incident has been reported to admins")
        return _error("BAD_REQUEST_ERROR", "Bad request")

    def _authorized(self, req: Recorded) -> Reply | None:
        header = req.headers.get("authorization", "")
        if not header:
            return Reply(401, _error("BAD_REQUEST_ERROR", "Please provide your api key for authentication purposes."))
        expected = "Basic " + base64.b64encode(f"{self.key_id}:{self.key_secret}".encode()).decode()
        if header != expected:
            return Reply(401, _error("BAD_REQUEST_ERROR", "The api key provided is invalid"))
        return None

    @staticmethod
    def _int(query: dict[str, list[str]], name: str, default: int | None) -> int | Reply | None:
        values = query.get(name)
        if not values:
            return default
        try:
            return int(values[-1])
        except ValueError:
            return Reply(400, _error("BAD_REQUEST_ERROR", f"The {name} must be an integer.", name))

    def route(self, req: Recorded) -> Reply:
        resource = PATHS.get(req.path)
        if resource is None or req.method != "GET":
            return Reply(400, _error("BAD_REQUEST_ERROR", "The requested URL was not found on the server."))
        denied = self._authorized(req)
        if denied is not None:
            return denied
        account = (req.query.get("account_number") or [""])[-1]
        if not account:
            return Reply(400, _error("BAD_REQUEST_ERROR", "The account number field is required.", "account_number"))
        params = {name: self._int(req.query, name, default)
                  for name, default in (("count", 10), ("skip", 0), ("from", None), ("to", None))}
        for value in params.values():
            if isinstance(value, Reply):
                return value
        count, skip, frm, to = params["count"], params["skip"], params["from"], params["to"]
        assert isinstance(count, int) and isinstance(skip, int)
        if count > 100:
            return Reply(400, _error("BAD_REQUEST_ERROR", "The count may not be greater than 100.", "count"))
        if count < 1 or skip < 0:
            return Reply(400, _error("BAD_REQUEST_ERROR", "The count must be at least 1.", "count"))
        with self._data_lock:
            rows = [r for r in self.data[resource]
                    if (resource == "payouts" and account == self.account_number)
                    or r.get("account_number") == account]
            rows = [r for r in rows
                    if (frm is None or r["created_at"] >= frm) and (to is None or r["created_at"] <= to)]
            rows.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
            page = rows[skip:skip + count]
        return Reply(200, {"entity": "collection", "count": len(page), "items": page})
