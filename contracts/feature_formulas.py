"""The feature formulas of contracts/features.py for one application, in Python: what sql/risk/70_scoring_input.sql
computes for an application's scoring input, term by term.

Stdlib only, so any room can use it: the scoring API scores with it, and the pandas reference
(ingestion/feature_reference.py) builds its frames with it. The SQL's ``COALESCE(a / NULLIF(b, 0), 0.0)``
is :func:`ratio`; ``COALESCE(closed.c, previous.c, 0.0)`` over the two behaviour windows looked up is
:func:`behaviour_feature_values`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from contracts.features import APPLICATION_FEATURE_NAMES, ATTRIBUTE_FEATURE_NAMES, BEHAVIOUR_FEATURES

# The columns of a customer_behaviour_windows row (contracts/tables.py) the behaviour features read.
BEHAVIOUR_WINDOW_COLUMNS: tuple[str, ...] = (
    "income_stability", "debit_minor_last", "balance_mean_minor_last", "dpd_current", "dpd_max", "dpd_mean",
    "late_payments", "missed_payments", "behaviour_windows",
)
# Behaviour features that are a window column as it is (the other two divide by the monthly income).
_COPIED = ("income_stability", "dpd_current", "dpd_max", "dpd_mean", "late_payments", "missed_payments",
           "behaviour_windows")


def ratio(num: float | None, den: float | None) -> float:
    """``COALESCE(num / NULLIF(den, 0), 0.0)``: 0 when either side is null or ``den`` is 0."""
    if num is None or den is None or den == 0:
        return 0.0
    return float(num) / float(den)


def coalesce(*values: float | None) -> float:
    """``COALESCE(v1, v2, ..., 0.0)`` as a float."""
    for v in values:
        if v is not None:
            return float(v)
    return 0.0


def monthly_income_minor(annual_income_minor: float) -> float:
    """``annual_income_minor / 12.0``: the denominator of every income ratio."""
    return annual_income_minor / 12.0


def attribute(value: float | None) -> float:
    """``CAST(attribute AS DOUBLE)``: an application attribute as its feature, NaN (null) when absent."""
    return math.nan if value is None else float(value)


def application_feature_values(app: Mapping[str, Any]) -> dict[str, float]:
    """The APPLICATION_FEATURES of one loan_application (contract field names; null is None), in contract order.

    An attribute feature the application lacks is NaN: null, which a model imputes (contracts/attributes.py).
    """
    monthly = monthly_income_minor(app["annual_income_minor"])
    collateral = app.get("collateral_value_minor")
    values = {
        "debt_to_income": ratio(app["monthly_debt_minor"], monthly),
        "loan_to_income": ratio(app["amount_minor"], app["annual_income_minor"]),
        "installment_to_income": ratio(app["installment_minor"], monthly),
        "credit_utilization": ratio(app["revolving_balance_minor"], app["revolving_limit_minor"]),
        "interest_rate": float(app["interest_rate"]),
        "term_months": float(app["term_months"]),
        "emp_length_years": coalesce(app.get("emp_length_years")),
        "delinquencies_2y": float(app["delinquencies_2y"]),
        "inquiries_12m": float(app["inquiries_12m"]),
        "is_secured": 0.0 if collateral is None else 1.0,
        "loan_to_value": ratio(app["amount_minor"], collateral),
        **{name: attribute(app.get(name)) for name in ATTRIBUTE_FEATURE_NAMES},
    }
    return {name: values[name] for name in APPLICATION_FEATURE_NAMES}


def behaviour_feature_values(closed: Mapping[str, float] | None, previous: Mapping[str, float] | None,
                             monthly_income: float) -> dict[str, float]:
    """The BEHAVIOUR_FEATURES from the customer's window closed at the event time and the one before (None: absent).

    Each feature is the closed window's value, else the previous window's, else 0; spend and balance are
    divided by ``monthly_income`` (the application's) after that choice, as the SQL does.
    """
    rows = [w for w in (closed, previous) if w is not None]

    def column(name: str) -> float | None:
        return next((float(w[name]) for w in rows if w.get(name) is not None), None)

    values = {name: coalesce(column(name)) for name in _COPIED}
    values["spend_to_income"] = ratio(column("debit_minor_last"), monthly_income)
    values["balance_to_income"] = ratio(column("balance_mean_minor_last"), monthly_income)
    return {f.name: values[f.name] for f in BEHAVIOUR_FEATURES}


def behaviour_slots(event_time_ms: int, window_ms: int) -> tuple[int, int]:
    """(end of the behaviour window closed at ``event_time_ms``, end of the one before), epoch milliseconds.

    Windows are tumbling and epoch-aligned, so the last one closed at an event time ends at the event
    time floored to the window length (``closed_slot`` and ``previous_slot`` in the SQL).
    """
    closed = event_time_ms // window_ms * window_ms
    return closed, closed - window_ms
