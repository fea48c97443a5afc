"""The Plaid client and source against a local fake /transactions/sync: paging, mapping, errors, mutation restarts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from contracts.events import TRANSACTION
from contracts.validate import validate_event
from ingestion.apis.http import ApiAuthError, ApiRequestError, ApiUnavailable, RetryPolicy
from ingestion.apis.mapping import customer_lookup
from ingestion.apis.plaid import PlaidClient, PlaidSource
from ingestion.apis.runner import Event, run_ingest
from tests.fake_apis import Fault
from tests.fake_apis.plaid_server import SYNC, FakePlaid, make_transaction

TOKEN = "access-sandbox-7f3e1c2a-test-token"
FAST = RetryPolicy(max_attempts=5, backoff_base_s=0.001, backoff_cap_s=0.004, max_retry_after_s=5)
CUSTOMERS = customer_lookup({"acc-checking": "cust-001", "acc-savings": "cust-001"})


@pytest.fixture
def plaid() -> Iterator[FakePlaid]:
    with FakePlaid() as srv:
        srv.add_item(TOKEN)
        yield srv


def client_for(srv: FakePlaid, *, secret: str | None = None, timeout_s: float = 2.0) -> PlaidClient:
    return PlaidClient(srv.client_id, secret or srv.secret, srv.base_url, timeout_s=timeout_s, retry=FAST,
                       rate_per_s=1000, burst=100)


def ingest(srv: FakePlaid, state_dir: Path, *, count: int = 2, **kwargs: object) -> tuple[list[Event], PlaidSource]:
    sent: list[Event] = []
    with client_for(srv) as client:
        source = PlaidSource(client, TOKEN, CUSTOMERS, count=count)
        run_ingest(source, sent.extend, state_dir, **kwargs)  # type: ignore[arg-type]
    return sent, source


def test_sync_pages_with_cursor_until_has_more_is_false(plaid: FakePlaid) -> None:
    plaid.add(TOKEN, *(make_transaction(n) for n in range(1, 8)))
    pages = []
    with client_for(plaid) as client:
        cursor = ""
        while True:
            page = client.transactions_sync(TOKEN, cursor, count=3)
            pages.append(page)
            cursor = page.next_cursor
            if not page.has_more:
                break
    assert [len(p.added) for p in pages] == [3, 3, 1]
    assert [p.has_more for p in pages] == [True, True, False]
    bodies = [r.json() for r in plaid.requests]
    assert "cursor" not in bodies[0] and bodies[1]["cursor"] == pages[0].next_cursor
    assert all(b["client_id"] == plaid.client_id and b["secret"] == plaid.secret and b["access_token"] == TOKEN
               and b["count"] == 3 for b in bodies)


def test_added_transactions_become_contract_valid_events(plaid: FakePlaid, tmp_path: Path) -> None:
    plaid.add(TOKEN,
              make_transaction(1, amount=12.34),
              make_transaction(2, amount=-2500.0, primary="INCOME", detailed="INCOME_WAGES", account_id="acc-savings"),
              make_transaction(3, amount=250.0, primary="LOAN_PAYMENTS", detailed="LOAN_PAYMENTS_CREDIT_CARD_PAYMENT",
                               datetime_="2024-03-01T18:45:10.250+05:30"),
              make_transaction(4, amount=-40.0, primary="TRANSFER_IN", detailed="TRANSFER_IN_ACCOUNT_TRANSFER"),
              make_transaction(5, amount=-3.5, primary="FOOD_AND_DRINK"),  # a refund: money in, not spending
              make_transaction(6, pending=True),
              make_transaction(7, currency=None),
              make_transaction(8, account_id="acc-unknown"))
    events, _ = ingest(plaid, tmp_path, count=3)
    by_id = {e["transaction_id"]: e for e in events}
    assert sorted(by_id) == ["txn-00001", "txn-00002", "txn-00003", "txn-00004", "txn-00005"]
    assert [(list(e) == TRANSACTION.names, validate_event(e, TRANSACTION)) for e in events] == \
        [(True, None)] * 5
    assert {k: (e["kind"], e["direction"], e["amount_minor"]) for k, e in by_id.items()} == {
        "txn-00001": ("spending", "debit", 1234), "txn-00002": ("salary", "credit", 250000),
        "txn-00003": ("card_payment", "debit", 25000), "txn-00004": ("transfer", "credit", 4000),
        "txn-00005": ("other", "credit", 350)}
    first = by_id["txn-00001"]
    assert (first["event_id"], first["source"], first["customer_id"], first["currency"]) == \
        ("plaid:txn-00001", "plaid", "cust-001", "USD")
    assert first["event_time"] == "2024-03-01T00:00:00.000Z" and first["balance_minor"] is None
    assert by_id["txn-00003"]["event_time"] == "2024-03-01T13:15:10.250Z"


def test_amounts_are_converted_exactly_never_through_float(plaid: FakePlaid, tmp_path: Path) -> None:
    amounts = {1: 0.29, 2: 1.15, 3: 1234567.89, 4: 0.07, 5: -19.99}  # each is inexact as a binary float
    plaid.add(TOKEN, *(make_transaction(n, amount=a) for n, a in amounts.items()))
    events, _ = ingest(plaid, tmp_path, count=10)
    assert {e["transaction_id"]: e["amount_minor"] for e in events} == {
        "txn-00001": 29, "txn-00002": 115, "txn-00003": 123456789, "txn-00004": 7, "txn-00005": 1999}


def test_modified_and_removed_are_counted_not_sent(plaid: FakePlaid, tmp_path: Path) -> None:
    plaid.add(TOKEN, make_transaction(1), make_transaction(2))
    plaid.modify(TOKEN, make_transaction(1, amount=13.0))
    plaid.remove(TOKEN, "txn-00002")
    sent: list[Event] = []
    with client_for(plaid) as client:
        report = run_ingest(PlaidSource(client, TOKEN, CUSTOMERS, count=10), sent.extend, tmp_path)
    assert [e["event_id"] for e in sent] == ["plaid:txn-00001", "plaid:txn-00002"]
    assert report.skipped == {"modified": 1, "removed": 1} and report.source_records == 4


def test_bad_credentials_fail_once_with_a_clear_redacted_message(plaid: FakePlaid,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    wrong = "not-the-plaid-secret-42"
    plaid.inject(Fault.server_error(500))  # a retry first, so something is logged
    caplog.set_level(logging.DEBUG)
    with client_for(plaid, secret=wrong) as client, pytest.raises(ApiAuthError) as exc:
        client.transactions_sync(TOKEN)
    message = str(exc.value)
    assert "INVALID_API_KEYS" in message and "PLAID_SECRET" in message
    assert exc.value.status == 400 and plaid.hits(SYNC) == 2
    for text in (message, caplog.text):
        for secret in (wrong, plaid.client_id, TOKEN):
            assert secret not in text


def test_unknown_access_token_is_an_auth_error(plaid: FakePlaid) -> None:
    with client_for(plaid) as client, pytest.raises(ApiAuthError, match="INVALID_ACCESS_TOKEN"):
        client.transactions_sync("access-sandbox-unknown-item")
    assert plaid.hits(SYNC) == 1


def test_count_above_500_is_refused_locally_and_by_the_server(plaid: FakePlaid) -> None:
    with client_for(plaid) as client:
        with pytest.raises(ValueError, match=r"1\.\.500"):
            client.transactions_sync(TOKEN, count=501)
        assert plaid.hits(SYNC) == 0
        body = {"client_id": plaid.client_id, "secret": plaid.secret, "access_token": TOKEN, "count": 501}
        with pytest.raises(ApiRequestError, match="INVALID_FIELD"):
            client.http.request("POST", SYNC, json_body=body)
    assert plaid.hits(SYNC) == 1


def test_every_transient_failure_kind_is_retried_on_one_call(plaid: FakePlaid) -> None:
    plaid.add(TOKEN, make_transaction(1))
    for fault in (Fault.rate_limited(None), Fault.server_error(503), Fault.malformed(), Fault.slow(2.0)):
        plaid.inject(fault)
    with client_for(plaid, timeout_s=0.2) as client:
        page = client.transactions_sync(TOKEN)
        stats = client.http.stats
        assert [t["transaction_id"] for t in page.added] == ["txn-00001"]
        assert (stats.rate_limited, stats.server_errors, stats.malformed, stats.timeouts, stats.retries) == \
            (1, 1, 1, 1, 4)
    assert plaid.hits(SYNC) == 5


def test_mutation_during_pagination_restarts_from_the_runs_first_cursor(plaid: FakePlaid, tmp_path: Path) -> None:
    plaid.add(TOKEN, *(make_transaction(n) for n in range(1, 4)))
    first, _ = ingest(plaid, tmp_path, count=2)
    assert len(first) == 3
    run_start_cursor = plaid.requests[-1].json().get("cursor")
    final_cursor = plaid.requests[-1]  # the request whose answer ended the first run
    plaid.add(TOKEN, *(make_transaction(n) for n in range(4, 9)))
    # the second run's first page is answered, then the data changes before its second page is asked for
    plaid.after_sync_request(plaid.hits(SYNC) + 1, lambda: plaid.add(TOKEN, make_transaction(9)))
    second, source = ingest(plaid, tmp_path, count=2)
    assert source.restarts == 1
    assert sorted(e["transaction_id"] for e in second) == [f"txn-{n:05d}" for n in range(4, 10)]
    statuses = [r.status for r in plaid.requests[-6:]]
    assert 400 in statuses
    failed = max(i for i, r in enumerate(plaid.requests) if r.status == 400)
    restart_body = plaid.requests[failed + 1].json()
    first_of_run2 = plaid.requests[plaid.requests.index(final_cursor) + 1].json()
    assert restart_body.get("cursor") == first_of_run2.get("cursor") != run_start_cursor


def test_mutations_that_never_stop_give_up_with_a_clear_error(plaid: FakePlaid, tmp_path: Path) -> None:
    plaid.add(TOKEN, *(make_transaction(n) for n in range(1, 6)))
    for n in range(1, 30):
        plaid.after_sync_request(n, partial(plaid.add, TOKEN, make_transaction(100 + n)))
    with client_for(plaid) as client:
        source = PlaidSource(client, TOKEN, CUSTOMERS, count=2, max_restarts=2)
        with pytest.raises(ApiUnavailable, match="kept changing"):
            run_ingest(source, lambda events: None, tmp_path)
    assert source.restarts == 3
