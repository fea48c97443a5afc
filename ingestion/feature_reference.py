"""Reference implementation in pandas of the contracts/features.py formulas, from raw event frames.

Used by tests (is the default learnable?) and as the oracle the Flink SQL features are compared to.
Behaviour windows are tumbling event-time windows of ``window_days`` aligned to the epoch; a window
is closed at ``as_of`` when it ends at or before it; "last 3 closed windows" are the three window
slots before ``as_of``, and a slot without salary counts as zero salary. The per-application
arithmetic (ratios, nulls, income) is contracts/feature_formulas.py, which the scoring API uses too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from contracts.feature_formulas import application_feature_values, monthly_income_minor, ratio
from contracts.features import APPLICATION_FEATURE_NAMES, BEHAVIOUR_FEATURES

BEHAVIOUR_FEATURE_NAMES: list[str] = [f.name for f in BEHAVIOUR_FEATURES]
MS_PER_DAY = 86_400_000


def to_epoch_ms(values: pd.Series) -> pd.Series:
    """ISO-8601 event times (or dates) as int64 epoch milliseconds."""
    return pd.to_datetime(values, utc=True, format="ISO8601").astype("int64") // 1_000_000


def events_frame(events: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Event dicts of one contract as a frame with an extra ``event_ms`` column."""
    frame = pd.DataFrame(list(events))
    if not frame.empty:
        frame["event_ms"] = to_epoch_ms(frame["event_time"])
    return frame


def _value(v: Any) -> Any:
    """A frame cell as the contract holds it: None for a missing value (NaN, NA)."""
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else v


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den per row by the contract's ratio (0 where den is 0 or either side is missing)."""
    return pd.Series([ratio(_value(n), _value(d)) for n, d in zip(num, den.reindex(num.index))],
                     index=num.index, dtype=float)


def application_features(apps: pd.DataFrame) -> pd.DataFrame:
    """The APPLICATION_FEATURES of each application (index: application_id), in contract order."""
    rows = [application_feature_values({k: _value(v) for k, v in app.items()}) for app in apps.to_dict("records")]
    return pd.DataFrame(rows, columns=APPLICATION_FEATURE_NAMES, index=apps["application_id"].to_numpy(), dtype=float)


def behaviour_features(apps: pd.DataFrame, transactions: pd.DataFrame, repayments: pd.DataFrame,
                       as_of_ms: pd.Series, window_days: float = 30.0) -> pd.DataFrame:
    """The BEHAVIOUR_FEATURES per customer as of ``as_of_ms`` (Series: customer_id -> epoch ms).

    ``apps`` gives each customer's annual income (latest application); ``transactions`` and
    ``repayments`` are event frames (see :func:`events_frame`).
    """
    width = int(window_days * MS_PER_DAY)
    last = (as_of_ms // width - 1).rename("last_window")
    annual = apps.sort_values("event_ms").groupby("customer_id")["annual_income_minor"].last()
    monthly = annual.astype(float).map(monthly_income_minor)
    out = pd.DataFrame(index=as_of_ms.index)

    def recent(frame: pd.DataFrame) -> pd.DataFrame:
        f = frame.join(last, on="customer_id", how="inner")
        f = f[f["event_ms"] < (f["last_window"] + 1) * width]
        f["back"] = f["last_window"] - f["event_ms"] // width
        return f[f["back"] <= 2]

    tx, rp = recent(transactions), recent(repayments)
    salary = tx[tx["kind"] == "salary"].groupby(["customer_id", "back"])["amount_minor"].sum().unstack("back")
    salary = salary.reindex(index=out.index, columns=[0, 1, 2]).fillna(0.0)
    mean, std = salary.mean(axis=1), salary.std(axis=1, ddof=0)
    out["income_stability"] = np.where(mean > 0, (1 - std / mean.where(mean > 0)).clip(0, 1), 0.0)
    newest = tx[tx["back"] == 0]
    debits = newest[newest["direction"] == "debit"].groupby("customer_id")["amount_minor"].sum()
    out["spend_to_income"] = _ratio(debits.reindex(out.index).fillna(0.0), monthly.reindex(out.index))
    balance = newest.groupby("customer_id")["balance_minor"].mean()
    out["balance_to_income"] = _ratio(balance.reindex(out.index).fillna(0.0), monthly.reindex(out.index))
    seen = repayments.join(as_of_ms.rename("as_of"), on="customer_id", how="inner")
    seen = seen[seen["event_ms"] <= seen["as_of"]].assign(event_s=lambda d: d["event_ms"] // 1000)
    seen = seen.sort_values(["event_s", "days_past_due"], kind="stable")  # as the job: latest second, then max
    out["dpd_current"] = seen.groupby("customer_id")["days_past_due"].last().reindex(out.index).fillna(0.0)
    by_customer = rp.groupby("customer_id")
    out["dpd_max"] = by_customer["days_past_due"].max().reindex(out.index).fillna(0.0)
    out["dpd_mean"] = by_customer["days_past_due"].mean().reindex(out.index).fillna(0.0)
    late = rp[(rp["days_past_due"] > 0) & rp["paid_date"].notna()].groupby("customer_id").size()
    out["late_payments"] = late.reindex(out.index).fillna(0.0)
    out["missed_payments"] = rp[rp["paid_date"].isna()].groupby("customer_id").size().reindex(out.index).fillna(0.0)
    windows = pd.concat([tx[["customer_id", "back"]], rp[["customer_id", "back"]]]).drop_duplicates()
    out["behaviour_windows"] = windows.groupby("customer_id").size().reindex(out.index).fillna(0.0)
    return out[BEHAVIOUR_FEATURE_NAMES].astype(float)
