"""Which checks run on which lake table: raw tables from the event contracts, features, scores."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from contracts.events import LOAN_APPLICATION, REPAYMENT, TRANSACTION
from contracts.features import FEATURE_NAMES
from contracts.schema import EventContract
from contracts.tables import CHALLENGER_ROLE, CHAMPION_ROLE
from prefect_flows.quality.checks import (
    CheckResult, check_choices, check_freshness, check_not_null, check_range, check_schema, check_unique,
    check_volume,
)

RAW_TABLES: dict[str, EventContract] = {"raw_loan_applications": LOAN_APPLICATION,
                                        "raw_transactions": TRANSACTION, "raw_repayments": REPAYMENT}
BEHAVIOUR_COLUMNS = ("customer_id", "behaviour_as_of", "income_stability", "dpd_current", "dpd_max", "dpd_mean",
                     "late_payments", "missed_payments", "behaviour_windows")
SCORE_COLUMNS = ("trigger_kind", "loan_id", "customer_id", "trigger_time", "probability", "model_version", *FEATURE_NAMES)
TABLES: tuple[str, ...] = (*RAW_TABLES, "customer_behaviour_windows", "scores")
# When each row landed: a raw event's arrival; a score's trigger (an application's event time or a window's close),
# which on live traffic is when it arrived. The hourly run reads the recent rows by it and counts volume from it.
LANDED_COLUMN = {**{table: "ingested_at" for table in RAW_TABLES}, "scores": "trigger_time"}
# Tables written when an event-time window closes (flink.behaviour_window_days), not as events arrive, and the column
# holding the close: read for the windows closed within a window length of the recent span (volume stays with the
# commit history: a day after a close has no new rows by design).
CLOSED_COLUMN = {"customer_behaviour_windows": "behaviour_as_of"}
WINDOWED_TABLES = frozenset(CLOSED_COLUMN)


def raw_checks(table: str, frame: pd.DataFrame, contract: EventContract) -> list[CheckResult]:
    """Schema, required fields, contract ranges and choices, unique event ids (and application ids)."""
    out = [check_schema(table, frame, [*contract.names, "ingested_at"])]
    out += [check_not_null(table, frame, f.name) for f in contract.fields if not f.nullable]
    out += [check_range(table, frame, f.name, f.minimum, f.maximum) for f in contract.fields
            if f.minimum is not None or f.maximum is not None]
    out += [check_choices(table, frame, f.name, f.choices) for f in contract.fields if f.choices and not f.pii]
    out.append(check_unique(table, frame, ["event_id"]))
    if contract is LOAN_APPLICATION:  # an application is one event; transactions and installments may be restated
        out.append(check_unique(table, frame, [contract.id_field]))
    return out


def behaviour_checks(table: str, frame: pd.DataFrame) -> list[CheckResult]:
    """Feature windows: schema, keys present and unique, feature ranges."""
    out = [check_schema(table, frame, BEHAVIOUR_COLUMNS)]
    out += [check_not_null(table, frame, c) for c in ("customer_id", "behaviour_as_of")]
    out.append(check_unique(table, frame, ["customer_id", "behaviour_as_of"]))
    out.append(check_range(table, frame, "income_stability", 0, 1))
    out += [check_range(table, frame, c, 0) for c in ("dpd_current", "dpd_max", "dpd_mean", "late_payments",
                                                      "missed_payments")]
    out.append(check_range(table, frame, "behaviour_windows", 0, 3))
    return out


def score_checks(table: str, frame: pd.DataFrame) -> list[CheckResult]:
    """Scores: schema, keys and model version present, probability in [0, 1], one application score per loan from
    the champion (a NULL role: written before the column) and one per loan from each shadow challenger."""
    out = [check_schema(table, frame, SCORE_COLUMNS)]
    out += [check_not_null(table, frame, c) for c in ("trigger_kind", "loan_id", "trigger_time", "probability",
                                                      "model_version")]
    out.append(check_range(table, frame, "probability", 0, 1))
    out.append(check_choices(table, frame, "trigger_kind", ["application", "behaviour_window"]))
    if "role" in frame.columns:
        out.append(check_choices(table, frame, "role", [CHAMPION_ROLE, CHALLENGER_ROLE]))
    if "trigger_kind" in frame.columns:
        apps = frame[frame["trigger_kind"] == "application"]
        role = apps["role"].fillna(CHAMPION_ROLE) if "role" in apps.columns else pd.Series(CHAMPION_ROLE, apps.index)
        out.append(check_unique(f"{table}[application]", apps[role == CHAMPION_ROLE], ["loan_id"]))
        out.append(check_unique(f"{table}[application challenger]", apps[role == CHALLENGER_ROLE],
                                ["loan_id", "model_version"]))
    out += [check_range(table, frame, c, 0) for c in ("debt_to_income", "loan_to_income", "credit_utilization",
                                                      "dpd_max") if c in frame.columns]
    return out


def content_checks(table: str, frame: pd.DataFrame) -> list[CheckResult]:
    """The content checks of ``table``."""
    if table in RAW_TABLES:
        return raw_checks(table, frame, RAW_TABLES[table])
    if table == "customer_behaviour_windows":
        return behaviour_checks(table, frame)
    if table == "scores":
        return score_checks(table, frame)
    raise KeyError(f"no data-quality checks defined for table {table!r}; known: {', '.join(TABLES)}")


def commit_history(snapshots: list[tuple[int, str, int]]) -> pd.DataFrame:
    """(timestamp_ms, operation, added_records) per snapshot as the frame check_volume reads, with whether each
    brought new rows (loanrisk.lake.appends_rows: what expiry keeps the newest of)."""
    from loanrisk.lake import appends_rows
    return pd.DataFrame({"committed_at": pd.to_datetime([s[0] for s in snapshots], unit="ms", utc=True),
                         "operation": [s[1] for s in snapshots], "added_records": [s[2] for s in snapshots],
                         "adds_rows": pd.Series([appends_rows(op, n) for _, op, n in snapshots], dtype=bool)})


def metadata_checks(table: str, commits: pd.DataFrame, max_staleness: timedelta, min_volume_ratio: float,
                    now: datetime | None = None, landed: pd.Series | None = None,
                    behaviour_window: timedelta = timedelta(0)) -> list[CheckResult]:
    """Freshness (latest commit adding rows) and volume against the previous day (rows appended per day).

    Volume counts the rows' arrival times (``landed``) where the table has them: the commit history goes back only
    as far as expiry keeps snapshots (hours), not the two days the comparison needs. A behaviour-window table gets
    rows only when its windows close, so its freshness allows ``behaviour_window`` more.
    """
    now = now or datetime.now(timezone.utc)
    if table in WINDOWED_TABLES:
        max_staleness += behaviour_window
    # Flink also commits empty snapshots, and compaction rewrites rows it already had: freshness is the latest
    # append that added rows (expiry keeps that snapshot, prefect_flows/lake_upkeep.py).
    adding = commits[commits["adds_rows"]]
    last = None if adding.empty else pd.Timestamp(adding["committed_at"].max()).to_pydatetime()
    return [check_freshness(table, last, max_staleness, now),
            check_volume(table, commits, min_volume_ratio, now, landed=landed)]
