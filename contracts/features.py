"""The model's feature vector: names, order and formulas, defined once for Flink SQL, training and scoring.

Every feature is a float. Ratios are plain ratios (0.35, not 35 %). A feature that cannot exist
for a loan has a neutral value plus an indicator that says so (``is_secured`` = 0 means
``loan_to_value`` is absent, never invented; ``behaviour_windows`` = 0 means no behaviour yet).
The Flink SQL in sql/ computes these columns under exactly these names; a test checks that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    """One model input: its name, formula and the value used when it is absent."""

    name: str
    formula: str
    neutral: float = 0.0


APPLICATION_FEATURES: tuple[Feature, ...] = (
    Feature("debt_to_income", "monthly_debt_minor / (annual_income_minor / 12)"),
    Feature("loan_to_income", "amount_minor / annual_income_minor"),
    Feature("installment_to_income", "installment_minor / (annual_income_minor / 12)"),
    Feature("credit_utilization", "revolving_balance_minor / revolving_limit_minor (0 when limit is 0)"),
    Feature("interest_rate", "interest_rate (annual percent)"),
    Feature("term_months", "term_months"),
    Feature("emp_length_years", "emp_length_years (0 when null)"),
    Feature("delinquencies_2y", "delinquencies_2y"),
    Feature("inquiries_12m", "inquiries_12m"),
    Feature("is_secured", "1 when collateral_value_minor is not null, else 0"),
    Feature("loan_to_value", "amount_minor / collateral_value_minor (0 when unsecured: see is_secured)"),
)

BEHAVIOUR_FEATURES: tuple[Feature, ...] = (
    Feature("income_stability",
            "1 - stddev/mean of salary credits per behaviour window over the last 3 closed windows, "
            "clipped to [0, 1]; 0 with no salary seen", 0.0),
    Feature("spend_to_income", "debits in the last closed behaviour window / (annual_income_minor / 12)"),
    Feature("balance_to_income", "mean reported balance in the last closed window / (annual_income_minor / 12)"),
    Feature("dpd_current", "days_past_due of the customer's latest repayment record"),
    Feature("dpd_max", "max days_past_due over the customer's repayments in the last 3 closed windows"),
    Feature("dpd_mean", "mean days_past_due over the customer's repayments in the last 3 closed windows"),
    Feature("late_payments", "count of repayments with 0 < days_past_due and a paid_date, last 3 windows"),
    Feature("missed_payments", "count of repayments with paid_date null, last 3 windows"),
    Feature("behaviour_windows", "number of closed behaviour windows seen for the customer (0..3)"),
)

ALL_FEATURES: tuple[Feature, ...] = APPLICATION_FEATURES + BEHAVIOUR_FEATURES
APPLICATION_FEATURE_NAMES: list[str] = [f.name for f in APPLICATION_FEATURES]
FEATURE_NAMES: list[str] = [f.name for f in ALL_FEATURES]


def feature_schema_hash(names: list[str]) -> str:
    """A short stable hash of an ordered feature list, stored with each model version."""
    return hashlib.sha256(json.dumps(list(names)).encode()).hexdigest()[:16]
