"""The default label, defined once: 60+ days past due within 12 months of origination (both configurable).

Definitions (see docs/EVENTS.md, "Default label"):
- A loan's origination time is the ``event_time`` of its ``loan_application`` event (loan id =
  application id).
- A repayment record says the loan was ``days_past_due`` days past due as of its ``event_time``; so
  the loan reached the threshold on ``event_date - (days_past_due - threshold)`` days.
- ``defaulted``: the loan reached ``dpd_threshold`` on a date no later than origination plus
  ``horizon_months`` calendar months. ``first_default_date`` is the earliest such date.
- ``mature``: the label can no longer change as of ``as_of``: origination + horizon <= as_of, or the
  loan has already defaulted. Immature loans must not be used as negatives for training.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas only for the frame helper; the rule itself is plain Python.
    import pandas as pd

DPD_THRESHOLD = 60
HORIZON_MONTHS = 12


@dataclass(frozen=True)
class DefaultDefinition:
    """When a loan counts as defaulted: ``dpd_threshold`` days past due within ``horizon_months``."""

    dpd_threshold: int = DPD_THRESHOLD
    horizon_months: int = HORIZON_MONTHS

    def __post_init__(self) -> None:
        if self.dpd_threshold < 1 or self.horizon_months < 1:
            raise ValueError("dpd_threshold and horizon_months must be >= 1")


DEFAULT_DEFINITION = DefaultDefinition()


@dataclass(frozen=True)
class LoanOutcome:
    """A loan's label as of some time: defaulted or not, when, and whether the label is final."""

    defaulted: bool
    first_default_date: date | None
    mature: bool


def _utc(t: datetime) -> datetime:
    """``t`` as an aware UTC datetime (a naive one is taken to be UTC already)."""
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def add_months(t: datetime, months: int) -> datetime:
    """``t`` plus calendar months, the day clamped to the target month's length (Jan 31 + 1 = Feb 28/29)."""
    total = t.year * 12 + (t.month - 1) + months
    year, month = divmod(total, 12)
    day = min(t.day, calendar.monthrange(year, month + 1)[1])
    return t.replace(year=year, month=month + 1, day=day)


def horizon_end(origination_time: datetime, definition: DefaultDefinition = DEFAULT_DEFINITION) -> datetime:
    """The end of the observation horizon: origination + ``horizon_months`` calendar months."""
    return add_months(origination_time, definition.horizon_months)


def threshold_date(event_time: datetime, days_past_due: int,
                   definition: DefaultDefinition = DEFAULT_DEFINITION) -> date | None:
    """The date the loan reached the threshold according to one record, or None if it has not."""
    if days_past_due < definition.dpd_threshold:
        return None
    return _utc(event_time).date() - timedelta(days=days_past_due - definition.dpd_threshold)


def loan_outcome(origination_time: datetime, repayments: Iterable[tuple[datetime, int]],
                 as_of: datetime | None = None,
                 definition: DefaultDefinition = DEFAULT_DEFINITION) -> LoanOutcome:
    """The label of one loan from its repayment records ``(event_time, days_past_due)``.

    Only records with ``event_time <= as_of`` are seen; ``as_of=None`` means everything is known.
    """
    seen_until = None if as_of is None else _utc(as_of)
    crossings = [d for t, dpd in repayments if seen_until is None or _utc(t) <= seen_until
                 if (d := threshold_date(t, dpd, definition)) is not None]
    end = horizon_end(_utc(origination_time), definition)
    first = min(crossings) if crossings else None
    defaulted = first is not None and first <= end.date()
    mature = defaulted or seen_until is None or end <= seen_until
    return LoanOutcome(defaulted=defaulted, first_default_date=first if defaulted else None, mature=mature)


def outcomes_frame(loans: pd.DataFrame, repayments: pd.DataFrame, as_of: datetime | None = None,
                   definition: DefaultDefinition = DEFAULT_DEFINITION) -> pd.DataFrame:
    """Labels for many loans, with the same rule as :func:`loan_outcome`.

    ``loans``: loan_id, customer_id, origination_time (UTC). ``repayments``: loan_id, event_time (UTC),
    days_past_due. Returns loan_id, customer_id, origination_time, defaulted (bool),
    first_default_date (UTC midnight, NaT when not defaulted) and mature (bool), in ``loans`` order.
    """
    import pandas as pd

    out = loans[["loan_id", "customer_id", "origination_time"]].copy()
    out["origination_time"] = pd.to_datetime(out["origination_time"], utc=True)
    rep = repayments[["loan_id", "event_time", "days_past_due"]].copy()
    rep["event_time"] = pd.to_datetime(rep["event_time"], utc=True)
    if as_of is not None:
        rep = rep[rep["event_time"] <= pd.Timestamp(_utc(as_of))]
    rep = rep[rep["days_past_due"] >= definition.dpd_threshold]
    crossing = rep["event_time"].dt.normalize() - pd.to_timedelta(
        rep["days_past_due"] - definition.dpd_threshold, unit="D")
    first = crossing.groupby(rep["loan_id"]).min().rename("first_default_date")
    out = out.merge(first, how="left", left_on="loan_id", right_index=True)
    end = pd.Series([horizon_end(t.to_pydatetime(), definition) for t in out["origination_time"]],
                    index=out.index, dtype="datetime64[ns, UTC]")
    out["defaulted"] = (out["first_default_date"] <= end.dt.normalize()).fillna(False).astype(bool)
    out.loc[~out["defaulted"], "first_default_date"] = pd.NaT
    out["mature"] = True if as_of is None else (out["defaulted"] | (end <= pd.Timestamp(_utc(as_of))))
    columns = ["loan_id", "customer_id", "origination_time", "defaulted", "first_default_date", "mature"]
    return out[columns].reset_index(drop=True)
