"""Training sets: Lending Club mapping, contract formulas, labeled files, and point-in-time Iceberg rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from contracts.features import (
    APPLICATION_FEATURE_NAMES, ATTRIBUTE_FEATURE_NAMES, FEATURE_NAMES, FORMULA_FEATURE_NAMES,
)
from models.dataset import (
    LC_LEAKING_COLUMNS, application_features, from_applications, from_file, from_iceberg, from_score_frames,
    latest_outcomes, lending_club_applications, lending_club_raw, sub_grade_rank,
)
from models.errors import DatasetError
from models.synthetic import toy_applications


@pytest.fixture(scope="module")
def lc_raw() -> pd.DataFrame:
    return lending_club_raw()


def test_lending_club_gives_contract_features_label_and_sub_grade(lc_raw: pd.DataFrame) -> None:
    ts = from_applications(lending_club_applications(lc_raw), "lendingclub")
    assert ts.feature_names == APPLICATION_FEATURE_NAMES
    assert ts.n == 10_000 and ts.positives == 111
    assert not ts.features[FORMULA_FEATURE_NAMES].isna().any().any()
    # Only the months since a delinquency or an inquiry can be missing: none on record.
    assert set(ts.features.columns[ts.features.isna().any()]) == {"months_since_last_delinquency",
                                                                   "months_since_last_inquiry"}
    assert (ts.features["is_secured"] == 0).all() and (ts.features["loan_to_value"] == 0).all()
    assert ts.sub_grade is not None and ts.sub_grade.between(1, 35).all()
    assert set(ts.time.dt.month) == {1, 2, 3}


def test_lending_club_debt_to_income_is_a_percent_and_is_divided(lc_raw: pd.DataFrame) -> None:
    assert 5 < lc_raw["debt_to_income"].median() < 50  # percent in the source (a ratio of 17 is impossible)
    apps = lending_club_applications(lc_raw)
    feats = application_features(apps)
    individual = (lc_raw["application_type"] == "individual").to_numpy()
    expected = lc_raw.loc[individual, "debt_to_income"].to_numpy() / 100
    np.testing.assert_allclose(feats.loc[individual, "debt_to_income"], expected, atol=1e-4)
    util = lc_raw["total_credit_utilized"] / lc_raw["total_credit_limit"].where(lc_raw["total_credit_limit"] > 0)
    np.testing.assert_allclose(feats["credit_utilization"], util.fillna(0), rtol=1e-9)


def test_post_issue_columns_cannot_change_the_features(lc_raw: pd.DataFrame) -> None:
    changed = lc_raw.copy()
    rng = np.random.default_rng(1)
    for col in LC_LEAKING_COLUMNS[1:]:
        changed[col] = rng.permutation(changed[col].to_numpy())
    changed["loan_status"] = "Charged Off"
    a, b = lending_club_applications(lc_raw), lending_club_applications(changed)
    pd.testing.assert_frame_equal(application_features(a), application_features(b))
    assert not set(LC_LEAKING_COLUMNS) & set(a.columns)
    assert b["defaulted"].all() and a["defaulted"].sum() == 111


def test_contract_formulas_on_hand_computed_rows() -> None:
    apps = pd.DataFrame({
        "amount_minor": [1_200_000, 500_000], "term_months": [36, 60], "interest_rate": [10.5, 20.0],
        "installment_minor": [40_000, 15_000], "annual_income_minor": [6_000_000, 2_400_000],
        "monthly_debt_minor": [100_000, 0], "revolving_balance_minor": [250_000, 10_000],
        "revolving_limit_minor": [1_000_000, 0], "collateral_value_minor": [None, 2_000_000],
        "emp_length_years": [None, 4], "delinquencies_2y": [1, 0], "inquiries_12m": [2, 5],
    })
    f = application_features(apps)
    expected = pd.DataFrame({
        "debt_to_income": [100_000 / 500_000, 0.0], "loan_to_income": [0.2, 500_000 / 2_400_000],
        "installment_to_income": [40_000 / 500_000, 15_000 / 200_000], "credit_utilization": [0.25, 0.0],
        "interest_rate": [10.5, 20.0], "term_months": [36.0, 60.0], "emp_length_years": [0.0, 4.0],
        "delinquencies_2y": [1.0, 0.0], "inquiries_12m": [2.0, 5.0], "is_secured": [0.0, 1.0],
        "loan_to_value": [0.0, 0.25]})
    pd.testing.assert_frame_equal(f[FORMULA_FEATURE_NAMES], expected)
    assert f[ATTRIBUTE_FEATURE_NAMES].isna().all().all(), "an attribute the rows lack is missing, not zero"


def test_formulas_agree_with_the_ingestion_reference_implementation() -> None:
    reference = pytest.importorskip("ingestion.feature_reference")
    apps = toy_applications(300, seed=3)
    ours = application_features(apps)
    theirs = reference.application_features(apps.assign(collateral_value_minor=apps["collateral_value_minor"]
                                                        .astype("float64")))
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_labeled_file_in_the_canonical_schema(tmp_path: Path, suffix: str) -> None:
    apps = toy_applications(200, seed=1)
    path = tmp_path / f"apps{suffix}"
    apps.to_csv(path, index=False) if suffix == ".csv" else apps.to_parquet(path, index=False)
    ts = from_file(path)
    assert ts.feature_names == FORMULA_FEATURE_NAMES and ts.n == 200  # no attribute column: none taken
    assert ts.positives == int(apps["defaulted"].sum())
    np.testing.assert_allclose(ts.features.to_numpy(), application_features(apps)[FORMULA_FEATURE_NAMES].to_numpy())


def test_file_errors_name_the_problem(tmp_path: Path) -> None:
    apps = toy_applications(50, seed=2)
    apps.drop(columns=["revolving_limit_minor"]).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(DatasetError, match="revolving_limit_minor"):
        from_file(tmp_path / "a.csv")
    apps.assign(defaulted=2).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DatasetError, match="0/1"):
        from_file(tmp_path / "b.csv")
    with pytest.raises(DatasetError, match="no such file"):
        from_file(tmp_path / "missing.csv")


def test_sub_grade_rank() -> None:
    ranks = sub_grade_rank(pd.Series(["A1", "a5", "G5", None, "Z9"]))
    assert ranks.iloc[:3].tolist() == [1.0, 5.0, 35.0] and ranks.iloc[3:].isna().all()


# -- Iceberg: point-in-time rows and mature labels ---------------------------------------------------
def _ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores: loan a scored twice at application time (first row wins) and once later; outcomes of 5 loans."""
    rows = []
    for loan, when, trig, dti in [("a", "2018-01-02", "application", 0.1), ("a", "2018-01-03", "application", 0.9),
                                  ("a", "2018-04-01", "behaviour", 0.5), ("b", "2018-01-05", "application", 0.2),
                                  ("c", "2018-02-01", "application", 0.3), ("d", "2018-03-01", "application", 0.4),
                                  ("e", "2018-03-02", "application", 0.6)]:
        row = {n: 0.0 for n in FEATURE_NAMES}
        row.update(loan_id=loan, customer_id=f"cus-{loan}", trigger_time=_ts(when), trigger_kind=trig, debt_to_income=dti)
        rows.append(row)
    scores = pd.DataFrame(rows)
    outcomes = pd.DataFrame({
        "loan_id": ["a", "b", "c", "d", "e"],
        "origination_time": [_ts("2018-01-02"), _ts("2018-01-05"), _ts("2018-02-01"), _ts("2018-03-01"),
                             _ts("2018-03-02")],
        "max_days_past_due": [0, 75, 0, 90, 65],
        # b defaulted in its horizon; d defaulted after its 12 months; e defaulted early though young.
        "first_default_date": [pd.NaT, _ts("2018-06-01"), pd.NaT, _ts("2019-04-15"), _ts("2018-06-10")],
        "observed_until": [_ts("2019-02-01"), _ts("2019-02-01"), _ts("2018-09-01"), _ts("2019-05-01"),
                           _ts("2018-07-01")],
    })
    return scores, outcomes


def test_score_rows_are_point_in_time_and_labels_mature() -> None:
    scores, outcomes = _frames()
    ts = from_score_frames(scores, outcomes)
    got = dict(zip(ts.ids, ts.label))
    # c is immature (origination + 12 months > observed_until, no default yet): left out.
    assert got == {"a": 0, "b": 1, "d": 0, "e": 1}
    a = ts.features[(ts.ids == "a").to_numpy()]
    assert a["debt_to_income"].item() == 0.1  # the first application-time row, not later ones
    assert ts.feature_names == FEATURE_NAMES


def test_a_loans_label_comes_from_its_latest_history_row_whatever_the_scan_order() -> None:
    scores, outcomes = _frames()
    # b's history: the row with the default arrived last (a late repayment: same observed_until, one record
    # more), and the scan returns it first.
    history = outcomes.assign(repayment_records=[12, 13, 12, 12, 12])
    earlier_b = history[history["loan_id"] == "b"].assign(repayment_records=12, max_days_past_due=0,
                                                           first_default_date=pd.NaT)
    scrambled = pd.concat([history, earlier_b]).reset_index(drop=True)
    ts = from_score_frames(scores, scrambled)
    assert dict(zip(ts.ids, ts.label))["b"] == 1
    latest = latest_outcomes(scrambled).set_index("loan_id")
    assert latest.loc["b", "repayment_records"] == 13 and len(latest) == 5


def test_from_iceberg_reads_tables_and_records_snapshot_ids(tmp_path: Path) -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    cat = SqlCatalog("lake", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=f"file://{tmp_path}/wh")
    cat.create_namespace("risk")
    scores, outcomes = _frames()
    tables = {}
    for name, frame in (("scores", scores), ("loan_outcomes", outcomes)):
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        arrow = arrow.cast(pa.schema([pa.field(f.name, pa.timestamp("us", tz="UTC"))
                                      if pa.types.is_timestamp(f.type) else f for f in arrow.schema]))
        tables[name] = cat.create_table(f"risk.{name}", schema=arrow.schema)
        tables[name].append(arrow)
    ts = from_iceberg(catalog=cat, namespace="risk")
    assert dict(zip(ts.ids, ts.label)) == {"a": 0, "b": 1, "d": 0, "e": 1}
    assert ts.snapshot_ids == {f"risk.{n}": t.current_snapshot().snapshot_id for n, t in tables.items()}
