"""The model's feature vector: names, order and formulas, defined once for Flink SQL, training and scoring.

Every feature is a float. Ratios are plain ratios (0.35, not 35 %). A feature that cannot exist
for a loan has a neutral value plus an indicator that says so (``is_secured`` = 0 means
``loan_to_value`` is absent, never invented; ``behaviour_windows`` = 0 means no behaviour yet).
The Flink SQL in sql/ computes these columns under exactly these names; a test checks that.

``direction`` is the sign credit sense demands of a feature's effect on the default probability,
which models trained with monotonic constraints obey and every model report checks: +1 when a higher
value must never lower the probability (more debt, utilisation or leverage for the same borrower,
more recent credit searches, more delinquencies or payment delays), -1 when a higher value must never
raise it (a steadier salary), 0 when credit sense sets no sign. Each is declared only where the
definition leaves no doubt: ``interest_rate`` is the lender's price, not a fact about the borrower;
employment length, term, spending and account balance have no agreed sign; indicators
(``is_secured``, ``behaviour_windows``) switch other features' meaning.

Every non-PII application attribute (contracts/attributes.py) is also an application feature, after the
formula features: its value as sent, null when the application lacks it (``nullable``; a model imputes
its training mean, see contracts/attributes.py), with the attribute's direction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from contracts.attributes import APPLICATION_ATTRIBUTES, check_names


@dataclass(frozen=True)
class Feature:
    """One model input: its name, formula, the value used when it is absent, and the sign its effect must have.

    A ``nullable`` feature (an application attribute) has no neutral value: null means unknown.
    """

    name: str
    formula: str
    neutral: float = 0.0
    direction: int = 0
    nullable: bool = False

    def __post_init__(self) -> None:
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"feature {self.name}: direction must be -1, 0 or 1, not {self.direction!r}")


FORMULA_FEATURES: tuple[Feature, ...] = (
    Feature("debt_to_income", "monthly_debt_minor / (annual_income_minor / 12)", direction=1),
    Feature("loan_to_income", "amount_minor / annual_income_minor", direction=1),
    Feature("installment_to_income", "installment_minor / (annual_income_minor / 12)", direction=1),
    Feature("credit_utilization", "revolving_balance_minor / revolving_limit_minor (0 when limit is 0)",
            direction=1),
    Feature("interest_rate", "interest_rate (annual percent)"),
    Feature("term_months", "term_months"),
    Feature("emp_length_years", "emp_length_years (0 when null)"),
    Feature("delinquencies_2y", "delinquencies_2y", direction=1),
    Feature("inquiries_12m", "inquiries_12m", direction=1),
    Feature("is_secured", "1 when collateral_value_minor is not null, else 0"),
    Feature("loan_to_value", "amount_minor / collateral_value_minor (0 when unsecured: see is_secured)",
            direction=1),
)

# One feature per non-PII application attribute: the attribute as sent, null when absent.
ATTRIBUTE_FEATURES: tuple[Feature, ...] = tuple(
    Feature(a.name, f"{a.name} as sent (null when absent: models impute their training mean)",
            direction=a.direction, nullable=True)
    for a in APPLICATION_ATTRIBUTES if a.is_feature)
APPLICATION_FEATURES: tuple[Feature, ...] = FORMULA_FEATURES + ATTRIBUTE_FEATURES

BEHAVIOUR_FEATURES: tuple[Feature, ...] = (
    Feature("income_stability",
            "1 - stddev/mean of salary credits per behaviour window over the last 3 closed windows, "
            "clipped to [0, 1]; 0 with no salary seen", 0.0, direction=-1),
    Feature("spend_to_income", "debits in the last closed behaviour window / (annual_income_minor / 12)"),
    Feature("balance_to_income", "mean reported balance in the last closed window / (annual_income_minor / 12)"),
    Feature("dpd_current", "days_past_due of the customer's latest repayment record", direction=1),
    Feature("dpd_max", "max days_past_due over the customer's repayments in the last 3 closed windows",
            direction=1),
    Feature("dpd_mean", "mean days_past_due over the customer's repayments in the last 3 closed windows",
            direction=1),
    Feature("late_payments", "count of repayments with 0 < days_past_due and a paid_date, last 3 windows",
            direction=1),
    Feature("missed_payments", "count of repayments with paid_date null, last 3 windows", direction=1),
    Feature("behaviour_windows", "number of closed behaviour windows seen for the customer (0..3)"),
)

ALL_FEATURES: tuple[Feature, ...] = APPLICATION_FEATURES + BEHAVIOUR_FEATURES
check_names(APPLICATION_ATTRIBUTES, [f.name for f in FORMULA_FEATURES + BEHAVIOUR_FEATURES])
APPLICATION_FEATURE_NAMES: list[str] = [f.name for f in APPLICATION_FEATURES]
ATTRIBUTE_FEATURE_NAMES: list[str] = [f.name for f in ATTRIBUTE_FEATURES]
FORMULA_FEATURE_NAMES: list[str] = [f.name for f in FORMULA_FEATURES]
FEATURE_NAMES: list[str] = [f.name for f in ALL_FEATURES]
RISK_DIRECTIONS: dict[str, int] = {f.name: f.direction for f in ALL_FEATURES if f.direction}


def risk_directions(names: list[str]) -> list[int]:
    """The declared direction of each feature in ``names`` (0 where none is declared), in that order."""
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise ValueError(f"not contract features: {', '.join(unknown)} (contracts/features.py declares them)")
    return [RISK_DIRECTIONS.get(n, 0) for n in names]


def feature_schema_hash(names: list[str]) -> str:
    """A short stable hash of an ordered feature list, stored with each model version."""
    return hashlib.sha256(json.dumps(list(names)).encode()).hexdigest()[:16]
