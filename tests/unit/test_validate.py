"""contracts.validate gives the first broken rule as a reason; contracts.fx converts minor units; docs stay generated."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from contracts import docs, fx
from contracts.events import LOAN_APPLICATION, REPAYMENT, TRANSACTION
from contracts.validate import DEFAULT_FUTURE_TOLERANCE, validate_event, validate_for_topic
from loanrisk.settings import Settings

NOW = datetime(2018, 6, 1, tzinfo=timezone.utc)

APPLICATION = {
    "event_id": "e-1", "schema_version": 1, "event_time": "2018-01-14T09:30:00.000Z", "source": "synthetic",
    "customer_id": "c-1", "application_id": "a-1", "full_name": "Jane Roe", "email": None, "phone": "+1 555",
    "product": "auto", "purpose": "car", "region": "west", "currency": "USD", "amount_minor": 2_000_000,
    "term_months": 60, "interest_rate": 7.5, "installment_minor": 40_000, "annual_income_minor": 9_000_000,
    "monthly_debt_minor": 50_000, "revolving_balance_minor": 100_000, "revolving_limit_minor": 500_000,
    "collateral_value_minor": 2_500_000, "employment_type": "salaried", "emp_length_years": 4,
    "delinquencies_2y": 0, "inquiries_12m": 1, "grade": "B", "sub_grade": "B2",
}
REPAYMENT_EVENT = {
    "event_id": "e-2", "schema_version": 1, "event_time": "2018-02-19T00:00:00.000Z", "source": "synthetic",
    "customer_id": "c-1", "repayment_id": "a-1-001", "loan_id": "a-1", "installment_no": 1,
    "due_date": "2018-02-14", "paid_date": None, "currency": "USD", "amount_due_minor": 40_000,
    "amount_paid_minor": 0, "days_past_due": 5,
}


def broken(**changes: object) -> dict:
    """APPLICATION with fields replaced; a value of ... removes the field."""
    event = dict(APPLICATION)
    for name, value in changes.items():
        if value is ...:
            del event[name]
        else:
            event[name] = value
    return event


def check(event: object, contract=LOAN_APPLICATION) -> str | None:
    raw = event if isinstance(event, bytes) else json.dumps(event).encode()
    return validate_event(raw, contract, now=NOW)


def test_valid_events_pass_as_bytes_and_as_dicts() -> None:
    assert check(APPLICATION) is None
    assert validate_event(APPLICATION, LOAN_APPLICATION, now=NOW) is None
    assert check(REPAYMENT_EVENT, REPAYMENT) is None


@pytest.mark.parametrize("raw", [b'{"event_id": "x",', b"\xff\xfe{}", b"[1, 2]", b'"text"',
                                 b'{"amount_minor": NaN}', b'{"amount_minor": Infinity}'])
def test_not_a_strict_json_object_is_invalid_json(raw: bytes) -> None:
    assert check(raw) == "invalid_json"


def test_missing_or_null_required_field_is_missing() -> None:
    assert check(broken(amount_minor=...)) == "missing:amount_minor"
    assert check(broken(full_name=None)) == "missing:full_name"


def test_nullable_fields_may_be_absent_or_null_and_unknown_fields_are_ignored() -> None:
    assert check(broken(email=..., collateral_value_minor=None, grade=None, new_field_v1_1="x")) is None


def test_missing_is_reported_before_type_and_in_contract_order() -> None:
    assert check(broken(amount_minor="12.50", customer_id=...)) == "missing:customer_id"
    assert check(broken(interest_rate=..., amount_minor=...)) == "missing:amount_minor"


@pytest.mark.parametrize("field, value", [
    ("amount_minor", "12.50"), ("amount_minor", 12.5), ("amount_minor", True), ("term_months", 2**31),
    ("interest_rate", "7.5"), ("event_time", "2018-01-14"), ("event_time", "2018-01-14T09:30:00"),
    ("event_time", "yesterday"), ("full_name", 42),
])
def test_wrong_type_is_type(field: str, value: object) -> None:
    assert check(broken(**{field: value})) == f"type:{field}"


def test_dates_must_be_real_calendar_dates() -> None:
    assert check({**REPAYMENT_EVENT, "due_date": "2018-02-30"}, REPAYMENT) == "type:due_date"
    assert check({**REPAYMENT_EVENT, "paid_date": "19/02/2018"}, REPAYMENT) == "type:paid_date"


def test_value_outside_enumeration_is_choice() -> None:
    assert check(broken(product="boat")) == "choice:product"
    assert check(broken(currency="usd")) == "choice:currency"


@pytest.mark.parametrize("field, value", [("amount_minor", -1), ("amount_minor", 0), ("interest_rate", 100.5),
                                          ("term_months", 481), ("emp_length_years", 11), ("schema_version", 2)])
def test_out_of_bounds_is_range(field: str, value: object) -> None:
    assert check(broken(**{field: value})) == f"range:{field}"


def test_non_finite_double_in_a_decoded_dict_is_range() -> None:
    assert validate_event(broken(interest_rate=float("nan")), LOAN_APPLICATION, now=NOW) == "range:interest_rate"


def iso(t: datetime) -> str:
    """``t`` as a contract timestamp with microseconds and ``Z``."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_event_time_beyond_the_configured_tolerance_is_future_event_time() -> None:
    tolerance = Settings().flink.future_tolerance
    limit = NOW + tolerance
    for event_time, want in ((limit - timedelta(seconds=1), None), (limit, None),
                             (limit + timedelta(microseconds=1), "future_event_time"),
                             (limit + timedelta(seconds=1), "future_event_time")):
        got = validate_event(broken(event_time=iso(event_time)), LOAN_APPLICATION, now=NOW,
                             future_tolerance=tolerance)
        assert got == want, (event_time, got)


def test_the_default_future_tolerance_is_tight() -> None:
    """An accepted event's time moves the watermark: the tolerance bounds how early one event closes windows."""
    assert timedelta(0) < DEFAULT_FUTURE_TOLERANCE <= timedelta(minutes=5)
    assert check(broken(event_time=iso(NOW + DEFAULT_FUTURE_TOLERANCE + timedelta(seconds=1)))) == \
        "future_event_time"
    assert check(broken(event_time=iso(NOW + DEFAULT_FUTURE_TOLERANCE))) is None


def test_the_tolerance_is_a_parameter_and_offsets_and_naive_nows_are_utc() -> None:
    too_far = iso(NOW + timedelta(days=2))
    assert validate_event(broken(event_time=too_far), LOAN_APPLICATION, now=NOW,
                          future_tolerance=timedelta(days=3)) is None
    assert validate_event(broken(event_time=iso(NOW + timedelta(seconds=1))), LOAN_APPLICATION, now=NOW,
                          future_tolerance=timedelta(0)) == "future_event_time"
    ahead = (NOW + timedelta(minutes=6)).astimezone(timezone(timedelta(hours=1))).isoformat(timespec="milliseconds")
    assert ahead.endswith("+01:00") and validate_event(broken(event_time=ahead), LOAN_APPLICATION, now=NOW,
                                                       future_tolerance=timedelta(minutes=5)) == "future_event_time"
    naive_now = NOW.replace(tzinfo=None)
    assert validate_event(broken(event_time=iso(NOW + timedelta(minutes=6))), LOAN_APPLICATION, now=naive_now,
                          future_tolerance=timedelta(minutes=5)) == "future_event_time"
    assert validate_event(broken(event_time=iso(NOW + timedelta(minutes=4))), LOAN_APPLICATION, now=naive_now,
                          future_tolerance=timedelta(minutes=5)) is None


def test_topic_selects_the_contract() -> None:
    assert validate_for_topic(json.dumps(REPAYMENT_EVENT).encode(), REPAYMENT.topic, now=NOW) is None
    assert validate_for_topic(json.dumps(REPAYMENT_EVENT).encode(), TRANSACTION.topic, now=NOW) == \
        "missing:transaction_id"


def test_inr_paise_convert_to_usd_cents() -> None:
    assert fx.to_reporting_minor(100_000, "INR") == 1_200  # 1,000 rupees at 0.012 USD
    assert fx.to_reporting_minor(12_345, "USD") == 12_345
    assert fx.to_major(12_345, "INR") == Decimal("123.45")
    assert fx.to_reporting_minor(125, "INR") == 2  # 1.5 cents rounds half-even to 2
    assert fx.to_reporting_minor(375, "INR") == 4  # 4.5 cents rounds half-even to 4
    assert fx.to_reporting(100_000, "EUR") == pytest.approx(1_080.0)


def test_fx_table_is_configurable_and_unknown_currencies_say_what_is_configured(tmp_path: Path) -> None:
    path = tmp_path / "fx.json"
    path.write_text(json.dumps({"USD": {"minor_digits": 2, "usd_per_unit": "1"},
                                "JPY": {"minor_digits": 0, "usd_per_unit": "0.0067"}}))
    table = fx.load_fx_table(path)
    assert fx.to_reporting_minor(1_000, "JPY", table) == 670
    with pytest.raises(KeyError, match="configured: JPY, USD"):
        fx.to_reporting_minor(1, "INR", table)
    path.write_text(json.dumps({"JPY": {"minor_digits": 0, "usd_per_unit": "0.0067"}}))
    with pytest.raises(ValueError, match="reporting currency USD"):
        fx.load_fx_table(path)


def test_events_doc_is_generated_from_the_contracts() -> None:
    committed = (Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md").read_text()
    assert committed == docs.render(), "docs/EVENTS.md is stale: run python -m contracts.docs > docs/EVENTS.md"
    for contract in (LOAN_APPLICATION, TRANSACTION, REPAYMENT):
        assert all(f"`{f.name}`" in committed for f in contract.fields)
