"""Train on the synthetic source (``ingestion.generator``) and check the model on a later time slice.

The generator's loan_application events become canonical application rows; their labels come from
the simulated repayment records through ``contracts.outcomes`` (60+ dpd within 12 months), keeping
mature labels only. The latest origination month is held out: the model is selected and fitted on
the earlier months and scored once on the later slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from models.dataset import LABEL, TrainingSet, from_applications
from models.errors import ModelError


def generated_applications(customers: int = 3000, seed: int = 7, as_of: datetime | None = None) -> pd.DataFrame:
    """Canonical application rows with a mature ``defaulted`` label from the synthetic world."""
    try:
        from ingestion.behaviour import simulate
        from ingestion.generator import GeneratorConfig, SyntheticWorld
    except ImportError as exc:
        raise ModelError(f"the synthetic generator is not available ({exc.name})") from None
    from contracts.outcomes import outcomes_frame

    cfg = GeneratorConfig(seed=seed, customers=customers, history_months=0, spend_txn_per_month=0.5)
    apps: list[dict[str, Any]] = []
    reps: list[tuple[str, str, int]] = []
    for customer, loan in SyntheticWorld(cfg).participants():
        for _, kind, event in simulate(customer, loan, cfg.behaviour, cfg.seed, emit_transactions=False):
            if kind == "loan_application":
                apps.append(event)
            elif kind == "repayment":
                reps.append((event["loan_id"], event["event_time"], event["days_past_due"]))
    frame = pd.DataFrame(apps)
    loans = pd.DataFrame({"loan_id": frame["application_id"], "customer_id": frame["customer_id"],
                          "origination_time": pd.to_datetime(frame["event_time"], utc=True)})
    rp = pd.DataFrame(reps, columns=["loan_id", "event_time", "days_past_due"])
    labels = outcomes_frame(loans, rp, as_of=as_of).set_index("loan_id")
    frame[LABEL] = labels.loc[frame["application_id"], "defaulted"].astype("int8").to_numpy()
    return frame[labels.loc[frame["application_id"], "mature"].to_numpy()].reset_index(drop=True)


def toy_applications(n: int = 2000, seed: int = 0, months: int = 3) -> pd.DataFrame:
    """A small labeled file in the canonical application schema (numpy only, instant; for tests and demos).

    Default odds rise with debt-to-income, utilisation, interest rate and inquiries; event times
    spread over ``months`` months from 2018-01-01.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    income = np.round(rng.lognormal(np.log(60_000), 0.4, n) * 100).astype("int64")
    amount = np.round(rng.uniform(2_000, 35_000, n) * 100).astype("int64")
    term = rng.choice([36, 60], n)
    rate = np.round(rng.uniform(5, 30, n), 2)
    installment = np.round(amount * (rate / 1200) / (1 - (1 + rate / 1200) ** -term)).astype("int64")
    dti = rng.uniform(0, 0.45, n)
    limit = np.round(rng.uniform(1_000, 60_000, n) * 100).astype("int64")
    util = rng.beta(2, 3, n)
    inquiries = rng.poisson(1.5, n)
    secured = rng.random(n) < 0.2
    logit = -4.5 + 4 * dti + 1.5 * util + 0.08 * (rate - 12) + 0.25 * inquiries + rng.normal(0, 0.5, n)
    start = pd.Timestamp("2018-01-01", tz="UTC")
    return pd.DataFrame({
        "application_id": [f"toy-{seed}-{i}" for i in range(n)],
        "event_time": start + pd.to_timedelta(np.sort(rng.uniform(0, 30.0 * months, n)), unit="D"),
        "amount_minor": amount, "term_months": term, "interest_rate": rate, "installment_minor": installment,
        "annual_income_minor": income, "monthly_debt_minor": np.round(dti * income / 12).astype("int64"),
        "revolving_balance_minor": np.round(util * limit).astype("int64"), "revolving_limit_minor": limit,
        "collateral_value_minor": pd.array(np.where(secured, amount * 1.25, np.nan), dtype="Float64").round()
        .astype("Int64"),
        "emp_length_years": pd.array(np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 11, n)),
                                     dtype="Float64").astype("Int64"),
        "delinquencies_2y": rng.poisson(0.3, n), "inquiries_12m": inquiries,
        "sub_grade": [f"{'ABCDEFG'[min(int((r - 5) / 3.6), 6)]}{1 + int(r * 10) % 5}" for r in rate],
        LABEL: (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8"),
    })


def generated_training_set(customers: int = 3000, seed: int = 7) -> TrainingSet:
    """The synthetic applications as a training set (time = application event time)."""
    return from_applications(generated_applications(customers, seed), source=f"synthetic(seed={seed},n={customers})")


def train_on_generated(customers: int = 3000, seed: int = 7, families: Sequence[str] | None = None,
                       budget: int | dict[str, int] = 4, monotonic: bool = False) -> dict[str, Any]:
    """Fit on the earlier months of generated loans (under the declared directions if ``monotonic``); ROC AUC and
    baselines on the latest month."""
    from models.pipeline import train_candidate
    from models.train import FAMILIES

    ts = generated_training_set(customers, seed)
    cand = train_candidate(ts, families or FAMILIES, budget, seed=seed, n_repeats=1, hold_out=True,
                           monotonic=monotonic)
    if cand.holdout is None:
        raise ModelError("the generated loans span one month only: raise customers for a later time slice")
    hold = cand.metadata["metrics"]["holdout"]
    return {"candidate": cand, "rows": ts.n, "positives": ts.positives, "holdout_period": cand.plan.holdout_period,
            "holdout_rows": cand.holdout.n, "holdout_positives": cand.holdout.positives,
            "roc_auc": hold["model"]["roc_auc"], "brier": hold["model"]["brier"],
            "baseline_roc_auc": {k: v["roc_auc"] for k, v in hold.items() if k != "model"}}
