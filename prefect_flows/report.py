"""report: the daily risk report (volumes, scores, high-risk share, calibration, realised vs predicted, PSI, model)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from contracts.tables import CHAMPION_ROLE
from prefect_flows.options import TASK_DEFAULTS, flow_options, with_policy
from prefect_flows.risk_report import ReportInputs, render


@task(name="read-scores-and-outcomes", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def read_inputs(days: int) -> ReportInputs:
    """The last ``days`` days of scores (by trigger time, up to the latest one) and mature outcomes."""
    from models.dataset import label_outcomes, latest_outcomes
    from models.registry import Registry
    from loanrisk.lake import catalog
    from loanrisk.settings import get_settings

    s = get_settings()
    cat = catalog(s)
    ns = s.catalog.namespace
    table = cat.load_table(f"{ns}.scores")
    role = ("role",) if "role" in {f.name for f in table.schema().fields} else ()
    scores = table.scan(selected_fields=("trigger_kind", "loan_id", "trigger_time", "probability", "model_version",
                                         *role)).to_pandas()
    if role:  # the champion's scores (a NULL role: written before the column); challengers are for `model shadow`
        scores = scores[scores["role"].isna() | (scores["role"] == CHAMPION_ROLE)].drop(columns="role")
    if not scores.empty:
        t = pd.to_datetime(scores["trigger_time"], utc=True)
        scores = scores[t >= t.max() - pd.Timedelta(days=days)].reset_index(drop=True)
    outcomes = cat.load_table(f"{ns}.loan_outcomes").scan(
        selected_fields=("loan_id", "first_default_date", "observed_until", "repayment_records")).to_pandas()
    apps = scores[scores["trigger_kind"] == "application"].sort_values("trigger_time").drop_duplicates("loan_id")
    labelled = pd.DataFrame(columns=["loan_id", "probability", "model_version", "defaulted"])
    if not apps.empty and not outcomes.empty:
        o = outcomes.merge(apps[["loan_id", "trigger_time"]].rename(columns={"trigger_time": "origination_time"}),
                           on="loan_id")
        lab = label_outcomes(latest_outcomes(o))
        lab = lab[lab["mature"]][["loan_id", "defaulted"]]
        labelled = apps[["loan_id", "probability", "model_version"]].merge(lab, on="loan_id")
        labelled["defaulted"] = labelled["defaulted"].astype(float)
    reg = Registry.from_settings()
    metadata: dict[str, Any] = {}
    for v in sorted(set(scores["model_version"].dropna()) | set(reg.versions()[-1:])):
        try:
            metadata[str(v)] = reg.metadata(str(v))
        except Exception:  # noqa: BLE001 - a version scored but since removed: the report says "no reference"
            metadata[str(v)] = {}
    pointer = reg.champion()
    return ReportInputs(scores=scores, labelled=labelled, metadata=metadata,
                        champion=str(pointer["version"]) if pointer else None, threshold=s.model.alert_threshold)


@task(name="render-report", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def write(inputs: ReportInputs, title: str) -> str:
    """Render the HTML report under <state dir>/reports/risk-<date>/."""
    from loanrisk.settings import get_settings

    out = get_settings().state_dir / "reports" / f"risk-{datetime.now(timezone.utc):%Y-%m-%d}"
    path = render(inputs, out, title)
    get_run_logger().info("risk report: %s", path)
    return str(path)


@flow(**flow_options("report", "The daily risk report: HTML with plots under the state dir's reports folder."))
def report(days: int = 30) -> str:
    """Read the lake and the registry, render the report; returns the HTML path."""
    inputs = with_policy(read_inputs)(days)
    title = f"Daily risk report {datetime.now(timezone.utc):%Y-%m-%d} (last {days} days of scores)"
    return with_policy(write, retries=0)(inputs, title)
