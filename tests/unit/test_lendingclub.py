"""Lending Club replay: leak-free applications in issue order, LC labels, behaviour driven by application fields only."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from contracts.attributes import APPLICATION_ATTRIBUTES
from contracts.events import INPUT_EVENTS, LOAN_APPLICATION
from contracts.validate import validate_event
from ingestion.behaviour import application_event
from ingestion.feature_reference import application_features
from ingestion.lendingclub import (BUREAU_COLUMNS, DEFAULT_STATUSES, LEAKY_COLUMNS, STATE_REGION, LendingClubReplay,
                                   ReplayConfig, application_frame, bureau_attributes, lendingclub_outcomes,
                                   load_loans, participant)

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
CONTRACTS = {c.name: c for c in INPUT_EVENTS}
SMALL = ReplayConfig(seed=5, limit=60, spend_txn_per_month=3)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return load_loans()


@pytest.fixture(scope="module")
def applications(raw: pd.DataFrame) -> list[dict]:
    """Every LC loan as its application event."""
    apps = application_frame(raw, seed=5)
    out = []
    for row in apps.to_dict("records"):
        customer, loan = participant(row, seed=5)
        out.append(application_event(customer, loan, f"e-{loan.loan_id}", "lendingclub"))
    return out


def test_all_ten_thousand_loans_become_valid_applications(raw: pd.DataFrame, applications: list[dict]) -> None:
    assert len(raw) == 10_000 and len(applications) == 10_000
    for event in applications:
        assert validate_event(event, LOAN_APPLICATION, now=NOW) is None
        assert (event["source"], event["currency"], event["product"]) == ("lendingclub", "USD", "personal")
        assert event["collateral_value_minor"] is None
    assert len({e["customer_id"] for e in applications}) == 10_000


def test_fields_are_mapped_from_the_row(raw: pd.DataFrame, applications: list[dict]) -> None:
    by_id = {e["application_id"]: e for e in applications}
    for row in raw.sample(200, random_state=1).itertuples():
        e = by_id[f"lc_app_{row.rownames:05d}"]
        assert e["amount_minor"] == round(row.loan_amount * 100)
        assert e["term_months"] == row.term and e["interest_rate"] == row.interest_rate
        assert (e["grade"], e["sub_grade"]) == (row.grade, row.sub_grade)
        assert e["region"] == STATE_REGION[row.state] and e["purpose"] == row.loan_purpose
        if row.annual_income > 0 and not pd.isna(row.debt_to_income):
            assert e["annual_income_minor"] == round(row.annual_income * 100)
            dti = e["monthly_debt_minor"] / (e["annual_income_minor"] / 12) * 100
            assert dti == pytest.approx(row.debt_to_income, abs=0.01)
        assert e["delinquencies_2y"] == row.delinq_2y and e["inquiries_12m"] == row.inquiries_last_12m


def test_every_state_maps_to_a_us_region(raw: pd.DataFrame) -> None:
    assert set(raw["state"]) <= set(STATE_REGION)
    assert STATE_REGION["DC"] == "south" and STATE_REGION["CA"] == "west" and STATE_REGION["NY"] == "northeast"


def test_issue_order_and_times_within_the_issue_month(raw: pd.DataFrame, applications: list[dict]) -> None:
    times = [e["event_time"] for e in applications]
    assert times == sorted(times)
    month = raw.set_index("rownames")["issue_month"]
    for e in applications:
        issued = datetime.strptime(month[int(e["application_id"][7:])], "%b-%Y")
        assert e["event_time"][:7] == issued.strftime("%Y-%m")
    days = pd.Series([e["event_time"][:10] for e in applications])
    assert days.nunique() > 80  # spread over the three months, not piled on the 1st


def test_post_issue_columns_never_reach_the_events(raw: pd.DataFrame, applications: list[dict]) -> None:
    apps = application_frame(raw)
    assert not set(LEAKY_COLUMNS) & set(apps.columns)
    attributes = set(BUREAU_COLUMNS) | {"credit_history_years"}
    for e in applications[:50]:
        # Contract order; every field but an attribute LC lacks for the loan (a null is left out).
        assert list(e) == [n for n in LOAN_APPLICATION.names if n in e]
        assert set(LOAN_APPLICATION.names) - set(e) <= attributes
    assert any(set(e) >= attributes for e in applications[:50]), "no replayed loan carries every bureau attribute"


def test_the_bureau_attributes_are_known_at_application_and_exactly_lending_clubs(raw: pd.DataFrame) -> None:
    assert not set(BUREAU_COLUMNS.values()) & set(LEAKY_COLUMNS)
    values = bureau_attributes(raw)
    assert list(values.columns) == [a.name for a in APPLICATION_ATTRIBUTES if a.name in values.columns]
    assert len(values.columns) == len(APPLICATION_ATTRIBUTES), "every shipped attribute comes from Lending Club"
    first = raw.iloc[0]
    assert values.iloc[0]["open_credit_lines"] == first["open_credit_lines"]
    assert values.iloc[0]["credit_history_years"] == 2018 - first["earliest_credit_line"]
    assert values["months_since_last_delinquency"].isna().sum() == raw["months_since_last_delinq"].isna().sum()


def test_outcome_labels_are_the_default_statuses(raw: pd.DataFrame) -> None:
    out = lendingclub_outcomes(raw, seed=5)
    assert len(out) == 10_000 and out["defaulted"].sum() == 111
    assert set(out.loc[out["defaulted"], "loan_status"]) == set(DEFAULT_STATUSES)
    assert out["first_default_date"].isna().all()
    assert list(out.columns)[:5] == ["loan_id", "customer_id", "origination_time", "defaulted",
                                     "first_default_date"]


def test_shuffled_labels_do_not_change_generated_behaviour(raw: pd.DataFrame) -> None:
    shuffled = raw.copy()
    rng = np.random.default_rng(0)
    for column in LEAKY_COLUMNS:
        shuffled[column] = rng.permutation(shuffled[column].to_numpy())
    assert (shuffled["loan_status"] != raw["loan_status"]).sum() > 100
    original = [m.value_bytes for m in LendingClubReplay(SMALL, raw).messages()]
    again = [m.value_bytes for m in LendingClubReplay(SMALL, shuffled).messages()]
    assert len(original) > 5_000 and again == original
    # ...while the application fields do drive it: richer applicants, different behaviour.
    richer = raw.copy()
    richer["annual_income"] *= 3
    changed = [m.value_bytes for m in LendingClubReplay(SMALL, richer).messages()]
    assert changed != original


def test_replayed_stream_is_valid_and_customer_keyed(raw: pd.DataFrame) -> None:
    messages = list(LendingClubReplay(SMALL, raw).messages())
    kinds = {m.kind for m in messages}
    assert kinds == {"loan_application", "transaction", "repayment"}
    applicants = set()
    for m in messages:
        event = json.loads(m.value_bytes)
        assert validate_event(m.value_bytes, CONTRACTS[m.kind], now=NOW) is None
        assert m.key == event["customer_id"] and event["source"] == "lendingclub"
        if m.kind == "loan_application":
            applicants.add(event["customer_id"])
    assert applicants == {m.key for m in messages}
    assert [m.event_time_ms for m in messages] == sorted(m.event_time_ms for m in messages)


def test_pii_is_synthetic_deterministic_and_realistic(applications: list[dict], raw: pd.DataFrame) -> None:
    again = application_frame(raw, seed=5).head(50).to_dict("records")
    for row, event in zip(again, applications[:50]):
        assert participant(row, seed=5)[0].full_name == event["full_name"]
    names = [e["full_name"] for e in applications]
    assert all(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", n) for n in names)
    assert len(set(names)) > 500
    emails = [e["email"] for e in applications if e["email"]]
    assert all(re.fullmatch(r"[a-z0-9._]+@[a-z.]*example\.(com|org|net)", m) for m in emails)
    phones = [e["phone"] for e in applications if e["phone"]]
    assert all(re.fullmatch(r"\+1 \(\d{3}\) 555-01\d{2}", p) for p in phones)
    assert 0.9 * len(applications) < len(emails) < len(applications)


def test_application_features_carry_signal_on_real_labels(raw: pd.DataFrame, applications: list[dict]) -> None:
    apps = pd.DataFrame(applications)
    x = application_features(apps)
    labels = lendingclub_outcomes(raw, seed=5).set_index("loan_id")["defaulted"]
    y = labels.loc[x.index].astype(int)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=2000))
    auc = roc_auc_score(y, cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1])
    print(f"Lending Club: {y.sum()} defaults in {len(y)}; logistic regression on application features, "
          f"5-fold CV ROC AUC {auc:.3f}")
    assert auc > 0.6
