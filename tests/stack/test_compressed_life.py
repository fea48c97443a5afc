"""A compressed life: months of live time against the session's job, lake maintenance running beside it.

The session's job runs with its state retentions shortened (tests/stack/conftest.py: LIVE_DAY_S seconds
stand for a day, the de-duplication window is DEDUP_RETENTION_S). Here a set of customers lives through
their months in live time: each event is sent at its event time's place in the life, a month lasting
LIVE_MONTH_S, longer than the de-duplication retention, so an outcome or a behaviour history that depended
on that retention would be forgotten between two months. One loan goes 75 days past due in its second
month and pays on time after. The life ends with watermark heartbeats on every partition (its windows close without new traffic).
Meanwhile compaction, snapshot expiry and orphan clean-up run over every lake table again and again. The
first test starts that life (ordered right after test_risk_job by conftest), the others check it near the
end of the session, after the reliability and security tests ran against the same job.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

from contracts.features import APPLICATION_FEATURE_NAMES, FEATURE_NAMES
from ingestion.feature_reference import behaviour_features, events_frame
from ingestion.generator import GeneratorConfig, generate
from ingestion.wire import ProducedEvent
from loanrisk.settings import Settings
from tests.stack.conftest import LIVE_MONTH_S, RiskRun
from tests.stack.reliability_helpers import (Outgoing, lake, late_drops, read_topic, send_tracked, serving,
                                             wait_until)

pytestmark = pytest.mark.stack

MONTH_MS = 30 * 86_400_000
DEFAULTED_DPD = 75
MAINTENANCE_EVERY_S = 45
HEARTBEATS_FOR_S = 120
BEHAVIOUR_NAMES = FEATURE_NAMES[len(APPLICATION_FEATURE_NAMES):]


@dataclass
class MaintenanceTally:
    """What the maintenance loop did to the lake while the job ran."""

    runs: int = 0
    compacted_partitions: int = 0
    files_replaced: int = 0
    expired_snapshots: int = 0
    orphans_deleted: int = 0
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)
    runs_since_error: int = 0


# A pass that meets a service the outage tests stopped fails, as maintain_lake's run would; the next
# pass is its retry. Any other error fails the check.
UNAVAILABLE = ("AdminShutdown", "Could not connect", "Connection refused", "connection failed",
               "EndpointConnectionError", "Connect timeout", "server closed the connection",
               "NETWORK_CONNECTION")  # the AWS SDK's (pyarrow's S3 filesystem) while the object store is paused


@dataclass
class Life:
    """The months sent, where each message landed in Kafka, and the maintenance and state figures."""

    months: list[list[ProducedEvent]]
    defaulted_loan: str
    default_month: int
    sent: list[tuple[ProducedEvent, tuple[str, int, int] | None]] = field(default_factory=list)
    state_bytes: list[tuple[int, int | None]] = field(default_factory=list)  # (month, checkpointed state bytes)
    maintenance: MaintenanceTally = field(default_factory=MaintenanceTally)
    done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    @property
    def events(self) -> list[ProducedEvent]:
        return [e for month in self.months for e in month]

    def valid(self, kind: str) -> pd.DataFrame:
        """The unique events of one contract as sent."""
        seen: dict[str, dict] = {}
        for e in self.events:
            if e.kind == kind:
                seen.setdefault(e.event_id, json.loads(e.value_bytes))
        return events_frame(seen.values())


def _months_of(events: list[ProducedEvent]) -> list[list[ProducedEvent]]:
    """Events binned into consecutive 30-day months of event time, each month in event-time order."""
    first = min(e.event_time_ms for e in events)
    months: dict[int, list[ProducedEvent]] = {}
    for e in sorted(events, key=lambda e: e.event_time_ms):
        months.setdefault((e.event_time_ms - first) // MONTH_MS, []).append(e)
    return [months.get(i, []) for i in range(max(months) + 1)]


def _with_value(e: ProducedEvent, **changes: Any) -> ProducedEvent:
    value = {**json.loads(e.value_bytes), **changes}
    return ProducedEvent(e.topic, e.key, json.dumps(value, separators=(",", ":")).encode(), e.event_id, e.kind,
                         e.event_time_ms)


def _default_one_loan(months: list[list[ProducedEvent]]) -> tuple[str, int]:
    """Make one loan's repayment in its second repayment month a missed one, 75 days past due; later ones stay."""
    by_loan: dict[str, list[tuple[int, int]]] = {}
    for m, month in enumerate(months):
        for i, e in enumerate(month):
            if e.kind == "repayment":
                by_loan.setdefault(json.loads(e.value_bytes)["loan_id"], []).append((m, i))
    loan, spots = max(by_loan.items(), key=lambda kv: len({m for m, _ in kv[1]}))
    second = sorted({m for m, _ in spots})[1]
    m, i = next((m, i) for m, i in spots if m == second)
    months[m][i] = _with_value(months[m][i], days_past_due=DEFAULTED_DPD, paid_date=None, amount_paid_minor=0)
    return loan, m


def _make_life(now: datetime) -> Life:
    start = (now - timedelta(days=200)).strftime("%Y-%m-%dT00:00:00Z")
    events = list(generate(GeneratorConfig(seed=20261203, customers=12, start=start, applications_per_day=48,
                                           history_months=2, observe_months=5)))
    assert max(e.event_time_ms for e in events) < now.timestamp() * 1000, "a life event would be in the future"
    months = _months_of(events)
    loan, month = _default_one_loan(months)
    # A repeated message in every month, sent right after the original: the job drops it within the
    # de-duplication window. (A copy sent mid-month could arrive after that window on a loaded machine,
    # and would then rightly land as a row of its own.)
    for month_events in months:
        if month_events:
            month_events.insert(1, month_events[0])
    return Life(months=months, defaulted_loan=loan, default_month=month)


def _checkpointed_state_bytes(settings: Settings, job_id: str) -> int | None:
    """The job's latest completed checkpoint size; None while no JobManager answers for the job (the kill
    tests run beside the life: the JobManager restarts and the job comes back under a new id)."""
    from loanrisk.errors import StackError
    from stack.flink_client import rest
    try:
        latest = rest(settings, f"/jobs/{job_id}/checkpoints").get("latest", {}).get("completed") or {}
    except StackError:
        return None
    return int(latest.get("state_size") or latest.get("checkpointed_size") or 0)


def _watermarks(settings: Settings, job_id: str) -> dict[str, str]:
    """Each vertex's lowest subtask input watermark, as a time: where a window that did not close waits."""
    from stack.flink_client import rest
    out = {}
    for v in rest(settings, f"/jobs/{job_id}")["vertices"]:
        values = [int(w["value"]) for w in rest(settings, f"/jobs/{job_id}/vertices/{v['id']}/watermarks")]
        low = min(values, default=None)
        out[v["name"][:60]] = "none" if low is None or low < 0 else pd.Timestamp(low, unit="ms", tz="UTC").isoformat()
    return out


def _send_months(life: Life, run: RiskRun) -> None:
    """The months in live time, then the heartbeats that close the life's last windows.

    Event time and processing time advance together, as they do live: each event is sent at its event
    time's place in the compressed life (a day is LIVE_DAY_S seconds), not a month's events in one burst
    that would put a month of event time between two partitions' consumers.
    """
    from ingestion.producer import heartbeats_for, make_producer
    s = run.settings
    first = min(e.event_time_ms for e in life.events)
    started = time.monotonic()
    try:
        for m, month in enumerate(life.months):
            wait = started + m * LIVE_MONTH_S - time.monotonic()
            if life.stop.wait(max(wait, 0)):
                return
            due = [(e.event_time_ms - first) / MONTH_MS * LIVE_MONTH_S - m * LIVE_MONTH_S for e in month]
            where = send_tracked(s, [Outgoing(e.topic, e.key, e.value_bytes, "life", e.event_id) for e in month],
                                 due_s=due, stop=life.stop)
            life.sent.extend(zip(month, where))
            life.state_bytes.append((m, _checkpointed_state_bytes(s, run.job_id)))
        # The end of the life is a lull: heartbeats on every partition close its windows, and keep coming
        # for a while (as riskctl produce --heartbeat-for does) while the job catches up. Not longer:
        # other tests read the input topics until they fall quiet.
        producer = make_producer(kafka=s.kafka)
        heartbeats = heartbeats_for(producer, s)
        heartbeats.close(max(e.event_time_ms for e in life.events))
        producer.poll(0)
        quiet = threading.Event()
        heartbeats.keep_sending(quiet)
        life.stop.wait(HEARTBEATS_FOR_S)
        quiet.set()
        producer.flush(30)
    except Exception as exc:  # noqa: BLE001 - reported by the checks, not lost in a thread
        life.errors.append(f"sending month: {exc!r}")
    finally:
        life.done.set()


def _maintain(life: Life, settings: Settings) -> None:
    """maintain_lake's steps over every table, with safety ages shortened to the compressed life."""
    from loanrisk.lake import catalog
    from prefect_flows.lake_upkeep import UpkeepReport, compact, expire_snapshots, remove_orphans, s3_lister_deleter
    tally = life.maintenance
    lister, deleter = s3_lister_deleter(settings.s3)
    while not life.stop.wait(MAINTENANCE_EVERY_S):
        try:
            cat = catalog(settings)
            for _, name in cat.list_tables(settings.catalog.namespace):
                if life.stop.is_set():
                    return
                tbl = cat.load_table(f"{settings.catalog.namespace}.{name}")
                report = UpkeepReport(name)
                compact(tbl, min_files=4, min_file_age=timedelta(0), max_partitions=4, report=report)
                expire_snapshots(tbl.refresh(), timedelta(minutes=3), report=report)
                remove_orphans(tbl, lister, deleter, timedelta(minutes=5), report=report)
                tally.compacted_partitions += report.compacted_partitions
                tally.files_replaced += report.files_before
                tally.expired_snapshots += report.expired_snapshots
                tally.orphans_deleted += report.orphans_deleted
                tally.conflicts += sum("changed during compaction" in n for n in report.notes)
            tally.runs += 1
            tally.runs_since_error += 1
        except Exception as exc:  # noqa: BLE001 - a failed pass is reported by the checks
            tally.errors.append(repr(exc)[:300])
            tally.runs_since_error = 0


@pytest.fixture(scope="session")
def life(risk_run: RiskRun) -> Iterator[Life]:
    """The compressed life, started once; its threads are stopped at the end of the session."""
    the_life = _make_life(datetime.now(timezone.utc))
    sender = threading.Thread(target=_send_months, args=(the_life, risk_run), name="life-months", daemon=True)
    keeper = threading.Thread(target=_maintain, args=(the_life, risk_run.settings), name="life-upkeep", daemon=True)
    sender.start()
    keeper.start()
    try:
        yield the_life
    finally:
        the_life.stop.set()
        sender.join(60)
        keeper.join(300)


def test_live_time_starts_months_of_a_loan_book_and_lake_maintenance_beside_the_job(life: Life) -> None:
    assert len([m for m in life.months if m]) >= 7, "fewer than seven months of life"
    print(f"compressed life: {len(life.months)} months of {LIVE_MONTH_S} s, {len(life.events)} messages; "
          f"loan {life.defaulted_loan} goes {DEFAULTED_DPD} days past due in month {life.default_month}")


def _settled(life: Life, run: RiskRun) -> dict[str, Any]:
    """Wait for the last month and the job's commits of it; return the life's rows from every store."""
    s = run.settings
    assert life.done.wait(len(life.months) * LIVE_MONTH_S + 300), "the months were not all sent"
    assert not life.errors, life.errors
    reps = life.valid("repayment")
    want_records = reps.groupby("loan_id").size().to_dict()

    short: dict[str, tuple[int, int]] = {}

    def outcomes_final() -> bool:
        rows = dict(serving(s, "SELECT loan_id, repayment_records FROM loan_outcomes WHERE loan_id = ANY(%s)",
                            (list(want_records),)))
        short.clear()
        short.update({k: (rows.get(k, 0), n) for k, n in want_records.items() if rows.get(k, 0) != n})
        return not short

    try:
        wait_until(outcomes_final, 300, "every repayment of the life in PostgreSQL loan_outcomes", s, run.job_id)
    except AssertionError as exc:
        last = reps.sort_values("event_ms").groupby("loan_id")["event_ms"].last()
        raise AssertionError(f"{exc}; (records in PostgreSQL, sent) per short loan, with its last repayment's "
                             f"event time: {[(k, v, int(last[k])) for k, v in short.items()]}") from None
    last_window_end = max(e.event_time_ms for e in life.months[-1]) // MONTH_MS * MONTH_MS + MONTH_MS
    last_end = pd.Timestamp(last_window_end, unit="ms", tz="UTC")
    customers = set(life.valid("transaction")["customer_id"])

    def windows_closed() -> bool:
        rows = lake(s, "customer_behaviour_windows", ("customer_id", "behaviour_as_of"))
        rows = rows[rows["customer_id"].isin(customers)]
        return bool((pd.to_datetime(rows["behaviour_as_of"], utc=True) >= last_end).any())

    try:
        wait_until(windows_closed, 300, "the life's last behaviour window in the lake", s, run.job_id)
    except AssertionError as exc:
        rows = lake(s, "customer_behaviour_windows", ("customer_id", "behaviour_as_of"))
        latest = rows[rows["customer_id"].isin(customers)]["behaviour_as_of"].max()
        raise AssertionError(f"{exc}; the life's latest closed window ends {latest}, its last one "
                             f"{last_end}; watermarks: "
                             f"{_watermarks(s, run.job_id)}; late drops: {late_drops(s, run.job_id)}") from None
    time.sleep(3 * s.flink.checkpoint_interval_ms / 1000)  # the commits that follow the last window
    return {"pg_outcomes": serving(s, "SELECT loan_id, max_days_past_due, first_default_date, repayment_records "
                                      "FROM loan_outcomes WHERE loan_id = ANY(%s)", (list(want_records),)),
            "lake_outcomes": lake(s, "loan_outcomes"), "windows": lake(s, "customer_behaviour_windows"),
            "scores": lake(s, "scores"), "customers": customers, "settings": s}


@pytest.fixture(scope="module")
def settled(life: Life, risk_run: RiskRun) -> dict[str, Any]:
    return _settled(life, risk_run)


def _expected_outcomes(reps: pd.DataFrame) -> pd.DataFrame:
    reps = reps.assign(event_date=pd.to_datetime(reps["event_ms"], unit="ms", utc=True).dt.date)
    return reps.groupby("loan_id").agg(
        max_days_past_due=("days_past_due", "max"), repayment_records=("event_id", "size"),
        first_default_date=("event_date", lambda d: min((x for x, dpd in zip(d, reps.loc[d.index, "days_past_due"])
                                                          if dpd >= 60), default=None)))


def life_run_settings(settled: dict[str, Any]) -> Settings:
    return settled["settings"]


def _snowflake_outcomes(settings: Settings, loans: list[str]) -> pd.DataFrame:
    """The latest LOAN_OUTCOMES row per loan in Snowflake, after the warehouse loader ran."""
    from warehouse.connection import connect
    from warehouse.ddl import q
    from warehouse.loader import sync
    sync(settings, tables=["LOAN_OUTCOMES"])
    with connect(settings) as conn:
        cur = conn.cursor()
        columns = ["loan_id", "max_days_past_due", "first_default_date", "repayment_records", "observed_until"]
        cur.execute(f"SELECT {', '.join(q(c) for c in columns)} FROM {q('LOAN_OUTCOMES')}")
        rows = pd.DataFrame(cur.fetchall(), columns=columns)
    rows = rows[rows["loan_id"].isin(loans)]
    return rows.sort_values(["observed_until", "repayment_records"]).groupby("loan_id").last()


def test_every_loan_outcome_after_the_life_equals_pandas_over_its_whole_history(
        life: Life, settled: dict[str, Any]) -> None:
    expected = _expected_outcomes(life.valid("repayment"))
    pg = pd.DataFrame(settled["pg_outcomes"], columns=["loan_id", "max_days_past_due", "first_default_date",
                                                       "repayment_records"]).set_index("loan_id").sort_index()
    lake_rows = settled["lake_outcomes"]
    lake_latest = lake_rows[lake_rows["loan_id"].isin(expected.index)].sort_values(
        ["observed_until", "repayment_records"]).groupby("loan_id").last()
    snowflake = _snowflake_outcomes(life_run_settings(settled), list(expected.index))
    for store, got in (("postgres", pg), ("lake", lake_latest), ("snowflake", snowflake)):
        got = got.loc[expected.index]
        assert (got["max_days_past_due"].astype(int) == expected["max_days_past_due"].astype(int)).all(), store
        assert (got["repayment_records"].astype(int) == expected["repayment_records"].astype(int)).all(), store
        assert list(got["first_default_date"].where(got["first_default_date"].notna(), None)) == \
            list(expected["first_default_date"]), store
    defaulted = expected.loc[life.defaulted_loan]
    assert defaulted["max_days_past_due"] >= DEFAULTED_DPD and defaulted["first_default_date"] is not None
    months_after = sum(any(e.kind == "repayment" and json.loads(e.value_bytes)["loan_id"] == life.defaulted_loan
                           for e in month) for month in life.months[life.default_month + 1:])
    assert months_after >= 2, "the defaulted loan has too few later repayments to show the default is kept"
    print(f"{len(expected)} loan outcomes equal in PostgreSQL, the lake and Snowflake; loan {life.defaulted_loan} still "
          f"defaulted after {months_after} more months of on-time repayments")


def test_every_behaviour_window_of_the_life_equals_the_pandas_reference(
        life: Life, settled: dict[str, Any]) -> None:
    windows = settled["windows"]
    rows = windows[windows["customer_id"].isin(settled["customers"])]
    apps, txns, reps = life.valid("loan_application"), life.valid("transaction"), life.valid("repayment")
    assert rows["behaviour_as_of"].nunique() >= 6, "fewer than six months of closed windows"
    mismatches = []
    for _, row in rows.iterrows():
        as_of = pd.Series({row["customer_id"]: int(pd.Timestamp(row["behaviour_as_of"]).value // 1_000_000)})
        ref = behaviour_features(apps, txns, reps, as_of)
        for name in BEHAVIOUR_NAMES:
            if name in row and abs(float(ref.loc[row["customer_id"], name]) - float(row[name])) > 1e-6:
                mismatches.append((row["customer_id"], row["behaviour_as_of"], name, row[name],
                                   ref.loc[row["customer_id"], name]))
    print(f"compared {len(rows)} behaviour windows of {rows['customer_id'].nunique()} customers")
    assert not mismatches, mismatches[:10]


def test_each_life_loan_that_ever_scored_high_alerted_exactly_once(
        life: Life, risk_run: RiskRun, settled: dict[str, Any]) -> None:
    s = risk_run.settings
    loans = set(life.valid("loan_application")["application_id"])
    scores = settled["scores"]
    scores = scores[scores["loan_id"].isin(loans)]
    expected = set(scores[scores["probability"] >= s.model.alert_threshold]["loan_id"])
    alerts = Counter(r.key.decode() if isinstance(r.key, bytes) else r.key
                     for r in read_topic(s, s.kafka.topics.alerts))
    got = {k: n for k, n in alerts.items() if k in loans}
    windows_scored = scores.groupby("loan_id")["trigger_kind"].apply(lambda t: int((t == "behaviour_window").sum()))
    print(f"life loans: {len(loans)}, re-scored {int(windows_scored.sum())} times on window closes; "
          f"{len(expected)} ever at or above {s.model.alert_threshold}; alerts {got}")
    assert set(got) == expected
    assert all(n == 1 for n in got.values()), got


def test_every_life_message_is_one_raw_row_or_one_counted_repeat_with_maintenance_running(
        life: Life, risk_run: RiskRun, settled: dict[str, Any]) -> None:
    s = risk_run.settings
    sent = Counter((e.topic, e.event_id) for e, where in life.sent if where is not None)
    assert sum(sent.values()) == len(life.events), "a message was not acknowledged by Kafka"
    tables = {s.kafka.topics.applications: "raw_loan_applications", s.kafka.topics.transactions: "raw_transactions",
              s.kafka.topics.repayments: "raw_repayments"}
    repeats = dict(((t, e), n) for t, e, n in serving(
        s, "SELECT source_topic, event_id, repeats FROM repeated_events WHERE event_id = ANY(%s)",
        (list({e for _, e in sent}),)))
    per_topic = {}
    for topic, table in tables.items():
        raw = Counter(lake(s, table, ("event_id",))["event_id"])
        mine = {e: n for (t, e), n in sent.items() if t == topic}
        rows = sum(raw[e] for e in mine)
        counted = sum(repeats.get((topic, e), 0) for e in mine)
        per_topic[topic] = {"messages": sum(mine.values()), "raw_rows": rows, "repeats": counted}
        assert all(raw[e] == 1 for e in mine), f"{table}: a life event is missing or doubled"
        assert rows + counted == sum(mine.values()), (topic, per_topic[topic])
    tally = life.maintenance
    print(f"reconciliation per topic: {per_topic}")
    print(f"maintenance beside the job: {tally}")
    print(f"checkpointed state bytes by month: {life.state_bytes}")
    unexpected = [e for e in tally.errors if not any(u in e for u in UNAVAILABLE)]
    assert not unexpected, unexpected[:3]
    assert tally.runs_since_error >= 1, "no maintenance pass completed after the last failed one"
    assert tally.runs >= 3 and tally.compacted_partitions > 0 and tally.expired_snapshots > 0, tally
