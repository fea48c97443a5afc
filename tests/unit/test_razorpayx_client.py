"""The RazorpayX client and source against a local fake API: auth, count/skip paging in windows, mapping, errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.events import TRANSACTION
from contracts.validate import validate_event
from ingestion.apis.http import ApiAuthError, ApiRequestError, MalformedResponse, RetryPolicy
from ingestion.apis.mapping import customer_lookup
from ingestion.apis.razorpayx import RazorpayXClient, RazorpayXSource
from ingestion.apis.runner import Event, IngestReport, run_ingest
from tests.fake_apis import Fault
from tests.fake_apis.razorpayx_server import ACCOUNT, FakeRazorpayX, make_payout, make_transaction

T0 = 1_700_000_000
FAST = RetryPolicy(max_attempts=5, backoff_base_s=0.001, backoff_cap_s=0.004, max_retry_after_s=5)
CUSTOMERS = customer_lookup({ACCOUNT: "cust-biz-9"})
TXNS = "/v1/transactions"


@pytest.fixture
def rzp() -> Iterator[FakeRazorpayX]:
    with FakeRazorpayX() as srv:
        yield srv


def client_for(srv: FakeRazorpayX, *, secret: str | None = None, timeout_s: float = 2.0) -> RazorpayXClient:
    return RazorpayXClient(srv.key_id, secret or srv.key_secret, srv.base_url, timeout_s=timeout_s, retry=FAST,
                           rate_per_s=1000, burst=100)


def ingest(srv: FakeRazorpayX, state_dir: Path, now: int, *, resource: str = "transactions", count: int = 100,
           **kwargs: object) -> tuple[list[Event], IngestReport]:
    sent: list[Event] = []
    with client_for(srv) as client:
        source = RazorpayXSource(client, ACCOUNT, CUSTOMERS, resource=resource, count=count,  # type: ignore[arg-type]
                                 settle_s=10, clock=lambda: now)
        report = run_ingest(source, sent.extend, state_dir, **kwargs)  # type: ignore[arg-type]
    return sent, report


def test_pages_with_count_and_skip_inside_one_fixed_window(rzp: FakeRazorpayX, tmp_path: Path) -> None:
    rzp.add_transactions(*(make_transaction(n, T0 + n, debit=100 * n) for n in range(1, 251)))
    events, report = ingest(rzp, tmp_path, now=T0 + 1000)
    assert len(events) == len({e["event_id"] for e in events}) == 250
    assert report.pages == 3 and report.caught_up
    queries = [r.query for r in rzp.requests]
    assert [q["skip"] for q in queries] == [["0"], ["100"], ["200"]]
    assert all(q["count"] == ["100"] and q["account_number"] == [ACCOUNT] and q["from"] == ["0"]
               and q["to"] == [str(T0 + 990)] for q in queries)
    assert all(r.headers["authorization"].startswith("Basic ") for r in rzp.requests)


def test_transactions_become_contract_valid_events(rzp: FakeRazorpayX, tmp_path: Path) -> None:
    vendor = make_transaction(3, T0 + 3, debit=9_999, balance=40_001)
    vendor["source"]["purpose"] = "vendor bill"
    rzp.add_transactions(make_transaction(1, T0 + 1, credit=5_000_000, balance=5_000_000),
                         make_transaction(2, T0 + 2, debit=1_234_567, balance=3_765_433), vendor)
    events, _ = ingest(rzp, tmp_path, now=T0 + 100)
    assert [(list(e) == TRANSACTION.names, validate_event(e, TRANSACTION)) for e in events] == \
        [(True, None)] * 3
    by_id = {e["event_id"]: e for e in events}
    credit, payout = by_id["razorpayx:txn_00000000000001"], by_id["razorpayx:txn_00000000000002"]
    assert (credit["direction"], credit["kind"], credit["amount_minor"], credit["balance_minor"],
            credit["counterparty"]) == ("credit", "transfer", 5_000_000, 5_000_000, "Payer 1")
    assert (payout["direction"], payout["kind"], payout["amount_minor"], payout["balance_minor"]) == \
        ("debit", "transfer", 1_234_567, 3_765_433)
    assert by_id["razorpayx:txn_00000000000003"]["kind"] == "spending"
    assert (credit["customer_id"], credit["currency"], credit["source"], credit["account_number"]) == \
        ("cust-biz-9", "INR", "razorpayx", ACCOUNT)
    assert credit["event_time"] == "2023-11-14T22:13:21.000Z"


def test_only_processed_payouts_become_debit_events(rzp: FakeRazorpayX, tmp_path: Path) -> None:
    rzp.add_payouts(make_payout(1, T0 + 1, amount=70_000), make_payout(2, T0 + 2, status="queued"),
                    make_payout(3, T0 + 3, status="reversed"), make_payout(4, T0 + 4, purpose="vendor bill"))
    events, report = ingest(rzp, tmp_path, now=T0 + 100, resource="payouts")
    assert [(e["event_id"], e["direction"], e["kind"], e["amount_minor"]) for e in events] == [
        ("razorpayx:pout_00000000000004", "debit", "spending", 50_000),
        ("razorpayx:pout_00000000000001", "debit", "transfer", 70_000)]
    assert all(e["account_number"] == ACCOUNT and validate_event(e, TRANSACTION) is None for e in events)
    assert report.skipped == {"payout_queued": 1, "payout_reversed": 1}
    assert rzp.hits("/v1/payouts") == 1


def test_records_at_a_window_edge_are_not_sent_twice(rzp: FakeRazorpayX, tmp_path: Path) -> None:
    edge = T0 + 90  # the first window's upper bound (now - settle); the API's "to" is inclusive
    rzp.add_transactions(make_transaction(1, T0, credit=1), make_transaction(2, edge, credit=2),
                         make_transaction(3, edge, debit=3))
    first, _ = ingest(rzp, tmp_path, now=T0 + 100)
    rzp.add_transactions(make_transaction(4, edge + 5, credit=4))
    second, report = ingest(rzp, tmp_path, now=T0 + 200)
    assert sorted(e["transaction_id"] for e in first) == ["txn_00000000000001", "txn_00000000000002",
                                                         "txn_00000000000003"]
    assert [e["transaction_id"] for e in second] == ["txn_00000000000004"]
    assert report.skipped == {"seen_in_previous_window": 2}
    assert rzp.requests[-1].query["from"] == [str(edge)]


def test_records_created_while_paging_do_not_shift_pages(rzp: FakeRazorpayX, tmp_path: Path) -> None:
    rzp.add_transactions(*(make_transaction(n, T0 + n, credit=n) for n in range(1, 6)))
    part1, _ = ingest(rzp, tmp_path, now=T0 + 100, count=2, max_pages=1)
    # newer records land at the front of a newest-first listing: without a fixed window, skip=2 would repeat
    rzp.add_transactions(*(make_transaction(n, T0 + 95 + n, credit=n) for n in range(6, 9)))
    part2, report = ingest(rzp, tmp_path, now=T0 + 200, count=2)
    ids = [e["transaction_id"] for e in part1 + part2]
    assert len(ids) == len(set(ids)) == 8
    assert [e["transaction_id"] for e in part2][-3:] == [f"txn_{n:014d}" for n in (8, 7, 6)]
    assert report.caught_up


def test_count_above_100_is_refused_locally_and_by_the_server(rzp: FakeRazorpayX) -> None:
    with client_for(rzp) as client:
        with pytest.raises(ValueError, match=r"1\.\.100"):
            client.list("transactions", account_number=ACCOUNT, count=101)
        assert rzp.hits() == 0
        with pytest.raises(ApiRequestError, match="count may not be greater than 100") as exc:
            client.http.request("GET", TXNS, params={"account_number": ACCOUNT, "count": 101})
    assert (exc.value.status, exc.value.code) == (400, "BAD_REQUEST_ERROR")
    assert rzp.hits(TXNS) == 1


def test_missing_account_number_is_a_request_error(rzp: FakeRazorpayX) -> None:
    with client_for(rzp) as client, pytest.raises(ApiRequestError, match="account number field is required"):
        client.http.request("GET", TXNS, params={"count": 10})


def test_bad_credentials_are_a_401_auth_error_without_retry(rzp: FakeRazorpayX) -> None:
    wrong = "definitely-wrong-secret"
    with client_for(rzp, secret=wrong) as client, pytest.raises(ApiAuthError) as exc:
        client.list("transactions", account_number=ACCOUNT)
    message = str(exc.value)
    assert exc.value.status == 401 and "api key provided is invalid" in message
    assert "RAZORPAYX_KEY_SECRET" in message
    assert wrong not in message and base64.b64encode(f"{rzp.key_id}:{wrong}".encode()).decode() not in message
    assert rzp.hits(TXNS) == 1


def test_transient_failures_during_a_run_are_retried(rzp: FakeRazorpayX, tmp_path: Path) -> None:
    rzp.add_transactions(*(make_transaction(n, T0 + n, credit=n) for n in range(1, 6)))
    for fault in (Fault.rate_limited("0"), Fault.server_error(502), Fault.malformed(), Fault.slow(2.0)):
        rzp.inject(fault, path=TXNS)
    sent: list[Event] = []
    with client_for(rzp, timeout_s=0.2) as client:
        source = RazorpayXSource(client, ACCOUNT, CUSTOMERS, count=2, clock=lambda: T0 + 100)
        report = run_ingest(source, sent.extend, tmp_path)
    assert len(sent) == len({e["event_id"] for e in sent}) == 5
    assert report.retries == 4 and report.requests == report.pages + 4 == 7


def test_a_valid_json_body_that_is_not_a_collection_is_malformed(rzp: FakeRazorpayX) -> None:
    rzp.inject(Fault(status=200, body=b'{"entity": "payout", "id": "pout_1"}'))
    with client_for(rzp) as client, pytest.raises(MalformedResponse, match="collection"):
        client.list("payouts", account_number=ACCOUNT)


def test_accounts_without_a_customer_are_skipped_and_counted(rzp: FakeRazorpayX, tmp_path: Path) -> None:
    rzp.add_transactions(make_transaction(1, T0 + 1, credit=10))
    sent: list[Event] = []
    with client_for(rzp) as client:
        source = RazorpayXSource(client, ACCOUNT, customer_lookup({}), clock=lambda: T0 + 100)
        report = run_ingest(source, sent.extend, tmp_path)
    assert sent == [] and report.skipped == {"unmapped_account": 1}
