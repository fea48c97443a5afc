"""Maps Plaid and RazorpayX records to ``transaction`` events (contracts/events.py), exactly and deterministically.

Rules:
- event_id is ``<source>:<source record id>``: re-reading the same record yields the same event_id.
- Money is integer minor units: Plaid decimal major units (positive = money out) are converted with Decimal
  arithmetic; RazorpayX amounts are already integer paise.
- Records that are not booked transactions (Plaid ``pending``, RazorpayX payouts not ``processed``), or that
  cannot be expressed in the contract (unknown currency, account without a customer), raise ``Unmappable``
  with a short reason the runner counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from contracts.events import CURRENCIES, SCHEMA_VERSION, TRANSACTION

CustomerLookup = Callable[[str], "str | None"]
MINOR_EXPONENT: dict[str, int] = {"USD": 2, "EUR": 2, "GBP": 2, "INR": 2}

# Plaid personal_finance_category: detailed codes first, then primary codes.
_PLAID_DETAILED_KIND = {
    "INCOME_WAGES": "salary",
    "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT": "card_payment",
}
_PLAID_PRIMARY_KIND = {
    "TRANSFER_IN": "transfer", "TRANSFER_OUT": "transfer",
    "FOOD_AND_DRINK": "spending", "GENERAL_MERCHANDISE": "spending", "HOME_IMPROVEMENT": "spending",
    "MEDICAL": "spending", "PERSONAL_CARE": "spending", "GENERAL_SERVICES": "spending",
    "ENTERTAINMENT": "spending", "TRAVEL": "spending", "TRANSPORTATION": "spending",
    "RENT_AND_UTILITIES": "spending", "GOVERNMENT_AND_NON_PROFIT": "spending", "BANK_FEES": "spending",
}
_RAZORPAYX_PURPOSE_KIND = {"vendor bill": "spending", "utility bill": "spending"}


class Unmappable(ValueError):
    """A source record that does not become an event; ``reason`` is a short counter key."""

    def __init__(self, reason: str, record_id: str | None = None) -> None:
        super().__init__(f"{reason}: {record_id}" if record_id else reason)
        self.reason = reason


def customer_lookup(mapping: Mapping[str, str] | None = None, default: str | None = None) -> CustomerLookup:
    """account -> customer_id from an explicit map, falling back to ``default`` (None = unmapped)."""
    table = dict(mapping or {})
    return lambda account: table.get(account, default)


def format_event_time(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, as the contracts require (e.g. 2018-01-14T09:30:00.000Z)."""
    if moment.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def to_minor_units(amount: Decimal | int | float | str, currency: str) -> int:
    """Major units -> integer minor units (half-even for sub-minor digits); never goes through float."""
    if isinstance(amount, float):
        amount = repr(amount)  # the shortest decimal that round-trips, never the binary expansion
    try:
        value = Decimal(amount) * (10 ** MINOR_EXPONENT[currency])
    except (InvalidOperation, TypeError):
        raise Unmappable("bad_amount") from None
    if not value.is_finite():
        raise Unmappable("bad_amount")
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _event(*, source: str, source_id: str, customer_id: str, event_time: str, account_number: str, kind: str,
           direction: str, currency: str, amount_minor: int, balance_minor: int | None,
           counterparty: str | None) -> dict[str, Any]:
    event = {
        "event_id": f"{source}:{source_id}", "schema_version": SCHEMA_VERSION, "event_time": event_time,
        "source": source, "customer_id": customer_id, "transaction_id": source_id,
        "account_number": account_number, "kind": kind, "direction": direction, "currency": currency,
        "amount_minor": amount_minor, "balance_minor": balance_minor, "counterparty": counterparty,
    }
    assert list(event) == TRANSACTION.names, "mapping out of step with contracts.events.TRANSACTION"
    return event


def _required_str(record: Mapping[str, Any], key: str, reason: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise Unmappable(reason, str(record.get("id") or record.get("transaction_id") or ""))
    return value


def _customer(customers: CustomerLookup, account: str, record_id: str) -> str:
    customer = customers(account)
    if not customer:
        raise Unmappable("unmapped_account", record_id)
    return customer


# -- Plaid -----------------------------------------------------------------------------------------
def _plaid_time(txn: Mapping[str, Any], record_id: str) -> str:
    for key in ("datetime", "authorized_datetime"):
        value = txn.get(key)
        if isinstance(value, str) and value:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise Unmappable("bad_time", record_id) from None
            return format_event_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    try:
        day = date.fromisoformat(str(txn.get("date")))
    except ValueError:
        raise Unmappable("bad_time", record_id) from None
    return format_event_time(datetime.combine(day, time(0), tzinfo=UTC))


def _plaid_kind(txn: Mapping[str, Any], direction: str) -> str:
    pfc = txn.get("personal_finance_category") or {}
    detailed, primary = pfc.get("detailed"), pfc.get("primary")
    if detailed in _PLAID_DETAILED_KIND:
        return _PLAID_DETAILED_KIND[detailed]
    kind = _PLAID_PRIMARY_KIND.get(primary or "", "other")
    return "other" if kind == "spending" and direction == "credit" else kind


def plaid_transaction_event(txn: Mapping[str, Any], customers: CustomerLookup) -> dict[str, Any]:
    """One Plaid transaction object (from /transactions/sync ``added``) -> a transaction event."""
    tid = _required_str(txn, "transaction_id", "missing_id")
    if txn.get("pending"):
        raise Unmappable("pending", tid)
    currency = txn.get("iso_currency_code")
    if currency not in CURRENCIES:
        raise Unmappable("unsupported_currency", tid)
    account = _required_str(txn, "account_id", "missing_account")
    amount = txn.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int, float, str)):
        raise Unmappable("bad_amount", tid)
    minor = to_minor_units(amount, currency)
    direction = "credit" if minor < 0 else "debit"  # Plaid: positive = money out of the account
    counterparty = txn.get("merchant_name") or txn.get("name") or None
    return _event(source="plaid", source_id=tid, customer_id=_customer(customers, account, tid),
                  event_time=_plaid_time(txn, tid), account_number=account, kind=_plaid_kind(txn, direction),
                  direction=direction, currency=currency, amount_minor=abs(minor), balance_minor=None,
                  counterparty=counterparty)


# -- RazorpayX -------------------------------------------------------------------------------------
def _paise(record: Mapping[str, Any], key: str, record_id: str, *, nullable: bool = False) -> int | None:
    value = record.get(key)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unmappable("bad_amount", record_id)
    return value


def _unix_time(record: Mapping[str, Any], record_id: str) -> str:
    value = record.get("created_at")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Unmappable("bad_time", record_id)
    return format_event_time(datetime.fromtimestamp(value, tz=UTC))


def _inr(record: Mapping[str, Any], record_id: str) -> str:
    currency = record.get("currency", "INR")
    if currency not in CURRENCIES:
        raise Unmappable("unsupported_currency", record_id)
    return str(currency)


def razorpayx_transaction_event(item: Mapping[str, Any], customers: CustomerLookup) -> dict[str, Any]:
    """One RazorpayX account-statement transaction (GET /v1/transactions) -> a transaction event."""
    tid = _required_str(item, "id", "missing_id")
    account = _required_str(item, "account_number", "missing_account")
    credit = _paise(item, "credit", tid) or 0
    debit = _paise(item, "debit", tid) or 0
    if (credit > 0) == (debit > 0):
        amount = _paise(item, "amount", tid) or 0
        if credit or debit or amount:
            raise Unmappable("ambiguous_direction", tid)
    direction = "credit" if credit > 0 else "debit"
    raw_source = item.get("source")
    source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
    entity = source.get("entity")
    if entity == "payout":
        kind = _RAZORPAYX_PURPOSE_KIND.get(str(source.get("purpose", "")).lower(), "transfer")
    elif entity == "bank_transfer":
        kind = "transfer"
    else:
        kind = "other"
    contact = (source.get("fund_account") or {}).get("contact") or {}
    counterparty = source.get("payer_name") or contact.get("name")
    return _event(source="razorpayx", source_id=tid, customer_id=_customer(customers, account, tid),
                  event_time=_unix_time(item, tid), account_number=account, kind=kind, direction=direction,
                  currency=_inr(item, tid), amount_minor=credit or debit,
                  balance_minor=_paise(item, "balance", tid, nullable=True), counterparty=counterparty or None)


def razorpayx_payout_event(item: Mapping[str, Any], account_number: str,
                           customers: CustomerLookup) -> dict[str, Any]:
    """One processed RazorpayX payout (GET /v1/payouts) -> a debit transaction event on ``account_number``."""
    pid = _required_str(item, "id", "missing_id")
    status = item.get("status")
    if status != "processed":
        raise Unmappable(f"payout_{status or 'unknown'}", pid)
    amount = _paise(item, "amount", pid) or 0
    contact = (item.get("fund_account") or {}).get("contact") or {}
    kind = _RAZORPAYX_PURPOSE_KIND.get(str(item.get("purpose", "")).lower(), "transfer")
    return _event(source="razorpayx", source_id=pid, customer_id=_customer(customers, account_number, pid),
                  event_time=_unix_time(item, pid), account_number=account_number, kind=kind, direction="debit",
                  currency=_inr(item, pid), amount_minor=amount, balance_minor=None,
                  counterparty=contact.get("name") or item.get("narration") or None)
