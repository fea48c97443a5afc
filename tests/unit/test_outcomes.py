"""The default label: 60+ days past due within 12 months (configurable), and when a label is mature."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest

from contracts.outcomes import DefaultDefinition, add_months, loan_outcome, outcomes_frame
from ingestion.generator import GeneratorConfig, SyntheticWorld

ORIG = datetime(2018, 1, 31, 15, 0, tzinfo=timezone.utc)


def at(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 12, tzinfo=timezone.utc)


def test_reaching_the_threshold_within_the_horizon_is_default_and_dated_back() -> None:
    out = loan_outcome(ORIG, [(at(date(2018, 5, 1)), 30), (at(date(2018, 6, 4)), 64)])
    assert out.defaulted and out.mature
    assert out.first_default_date == date(2018, 5, 31)  # 64 dpd on Jun 4 = 60 dpd four days earlier


def test_below_threshold_or_after_horizon_is_not_default() -> None:
    assert not loan_outcome(ORIG, [(at(date(2018, 6, 4)), 59)]).defaulted
    late = loan_outcome(ORIG, [(at(date(2019, 3, 1)), 60)])  # horizon ends 2019-01-31
    assert not late.defaulted and late.first_default_date is None


def test_horizon_end_is_inclusive_and_uses_calendar_months() -> None:
    assert add_months(ORIG, 1) == datetime(2018, 2, 28, 15, tzinfo=timezone.utc)
    assert add_months(datetime(2020, 1, 31), 1) == datetime(2020, 2, 29)
    assert add_months(datetime(2018, 3, 15), -3) == datetime(2017, 12, 15)
    assert loan_outcome(ORIG, [(at(date(2019, 1, 31)), 60)]).defaulted
    assert not loan_outcome(ORIG, [(at(date(2019, 2, 1)), 60)]).defaulted


def test_threshold_and_horizon_are_configurable() -> None:
    records = [(at(date(2018, 9, 1)), 75)]
    assert loan_outcome(ORIG, records).defaulted
    assert not loan_outcome(ORIG, records, definition=DefaultDefinition(dpd_threshold=90)).defaulted
    assert not loan_outcome(ORIG, records, definition=DefaultDefinition(horizon_months=6)).defaulted
    with pytest.raises(ValueError):
        DefaultDefinition(dpd_threshold=0)


def test_label_is_mature_after_the_horizon_or_once_defaulted() -> None:
    clean = [(at(date(2018, 3, 1)), 0)]
    assert not loan_outcome(ORIG, clean, as_of=datetime(2018, 12, 1, tzinfo=timezone.utc)).mature
    assert loan_outcome(ORIG, clean, as_of=datetime(2019, 2, 1, tzinfo=timezone.utc)).mature
    bad = [(at(date(2018, 6, 4)), 64)]
    early = loan_outcome(ORIG, bad, as_of=datetime(2018, 7, 1, tzinfo=timezone.utc))
    assert early.defaulted and early.mature


def test_records_after_as_of_are_not_seen() -> None:
    out = loan_outcome(ORIG, [(at(date(2018, 6, 4)), 64)], as_of=datetime(2018, 6, 1, tzinfo=timezone.utc))
    assert not out.defaulted and not out.mature


def test_frame_and_single_loan_rule_agree_on_simulated_loans() -> None:
    world = SyntheticWorld(GeneratorConfig(seed=11, customers=150, history_months=0, spend_txn_per_month=2))
    loans, repayments = [], []
    for t, kind, e in world.events():
        if kind == "loan_application":
            loans.append((e["application_id"], e["customer_id"], pd.Timestamp(t, unit="ms", tz="UTC")))
        elif kind == "repayment":
            repayments.append((e["loan_id"], pd.Timestamp(t, unit="ms", tz="UTC"), e["days_past_due"]))
    loans_df = pd.DataFrame(loans, columns=["loan_id", "customer_id", "origination_time"])
    rep_df = pd.DataFrame(repayments, columns=["loan_id", "event_time", "days_past_due"])
    as_of = datetime(2018, 9, 1, tzinfo=timezone.utc)
    frame = outcomes_frame(loans_df, rep_df, as_of=as_of).set_index("loan_id")
    assert 0 < frame["defaulted"].sum() < len(frame)
    assert 0 < frame["mature"].sum() < len(frame)
    by_loan = rep_df.groupby("loan_id")
    for loan_id, orig in zip(loans_df["loan_id"], loans_df["origination_time"]):
        recs = [] if loan_id not in by_loan.groups else [
            (r.event_time.to_pydatetime(), r.days_past_due) for r in by_loan.get_group(loan_id).itertuples()]
        one = loan_outcome(orig.to_pydatetime(), recs, as_of=as_of)
        row = frame.loc[loan_id]
        assert (one.defaulted, one.mature) == (bool(row["defaulted"]), bool(row["mature"]))
        expected = pd.NaT if one.first_default_date is None else pd.Timestamp(one.first_default_date, tz="UTC")
        assert (pd.isna(expected) and pd.isna(row["first_default_date"])) or expected == row["first_default_date"]
    # The world's own truth uses the same rule on the same repayments.
    truth = world.outcomes().set_index("loan_id")
    full = outcomes_frame(loans_df, rep_df).set_index("loan_id")
    pd.testing.assert_series_equal(truth["defaulted"], full["defaulted"])
    assert (truth["first_default_date"].dropna() - truth["origination_time"][truth["defaulted"]]).max() \
        <= timedelta(days=366)


def test_frame_without_any_default_keeps_its_types() -> None:
    loans = pd.DataFrame({"loan_id": ["a", "b"], "customer_id": ["x", "y"], "origination_time": [ORIG, ORIG]})
    records = pd.DataFrame({"loan_id": ["a"], "event_time": [at(date(2018, 4, 1))], "days_past_due": [12]})
    frame = outcomes_frame(loans, records, as_of=datetime(2018, 6, 1, tzinfo=timezone.utc))
    assert not frame["defaulted"].any() and not frame["mature"].any()
    assert str(frame["first_default_date"].dtype) == "datetime64[ns, UTC]" and frame["first_default_date"].isna().all()
