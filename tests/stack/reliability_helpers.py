"""Helpers of the reliability tests: tracked sending, hostile messages, job health and exactly-once checks."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.events import LOAN_APPLICATION, REPAYMENT, TRANSACTION
from contracts.tables import CHAMPION_ROLE
from ingestion.generator import GeneratorConfig, generate
from ingestion.wire import ProducedEvent, encode_event
from loanrisk.settings import Settings

CONTRACTS = {c.name: c for c in (LOAN_APPLICATION, TRANSACTION, REPAYMENT)}
AMOUNT = {"loan_application": "amount_minor", "transaction": "amount_minor", "repayment": "amount_due_minor"}
CHOICE = {"loan_application": "region", "transaction": "direction", "repayment": "currency"}
TEXT = {"loan_application": "purpose", "transaction": "counterparty", "repayment": "loan_id"}
LAKE_RAW = {"loan_application": ("raw_loan_applications", "application_id"),
            "transaction": ("raw_transactions", "transaction_id"), "repayment": ("raw_repayments", "repayment_id")}


@dataclass(frozen=True)
class Outgoing:
    """One message to send and what it is (``category`` "valid", "duplicate" or a hostile kind)."""

    topic: str
    key: str | None
    value: bytes
    category: str
    event_id: str | None = None


# -- sending and reading --------------------------------------------------------------------------
def send_tracked(settings: Settings, messages: list[Outgoing], *, pace_per_s: float | None = None,
                 due_s: Sequence[float] | None = None,
                 stop: threading.Event | None = None) -> list[tuple[str, int, int] | None]:
    """Send in order (idempotent producer); returns each message's (topic, partition, offset).

    ``pace_per_s`` spreads the messages evenly; ``due_s`` gives each one its own send time, in seconds
    after the call (one already due goes at once).
    """
    from confluent_kafka import Producer
    conf = settings.kafka.client_config()
    conf.update({"enable.idempotence": True, "acks": "all", "linger.ms": 20, "compression.type": "lz4",
                 "message.max.bytes": settings.kafka.max_message_bytes + 1024})
    producer = Producer(conf)
    where: list[tuple[str, int, int] | None] = [None] * len(messages)
    errors: list[str] = []

    def report(i: int) -> Callable[[Any, Any], None]:
        def cb(err: Any, msg: Any) -> None:
            if err is None:
                where[i] = (msg.topic(), msg.partition(), msg.offset())
            else:
                errors.append(str(err))
        return cb

    started = time.monotonic()
    for i, m in enumerate(messages):
        if due_s is not None:
            wait = due_s[i] - (time.monotonic() - started)
            if wait > 0:
                producer.poll(0)
                if stop is not None and stop.wait(wait):
                    break
                if stop is None:
                    time.sleep(wait)
        if stop is not None and stop.is_set():
            break
        while True:
            try:
                producer.produce(m.topic, m.value, m.key, on_delivery=report(i))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        if pace_per_s:
            ahead = (i + 1) / pace_per_s - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    assert producer.flush(120) == 0, "messages still undelivered after 120 s"
    assert not errors, errors[:5]
    return where


def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every committed record of ``topic`` up to its last stable offset (read_committed, new group, from the start)."""
    from ingestion.consumer import EventConsumer
    with EventConsumer([topic], group_id=f"reliability-{topic}-{time.time_ns()}", kafka=settings.kafka,
                       read_committed=True) as consumer:
        return consumer.read_to_end()


def lake(settings: Settings, table: str, columns: tuple[str, ...] = ("*",),
         days: Iterable[date] | None = None) -> pd.DataFrame:
    """An Iceberg table of the job (selected columns), read with pyiceberg; only the day partitions ``days`` when
    given (the files of other days are not read)."""
    from pyiceberg.expressions import AlwaysTrue, In

    from contracts.tables import lake_table
    from loanrisk.lake import catalog
    tbl = catalog(settings).load_table(f"{settings.catalog.namespace}.{table}")
    row_filter = AlwaysTrue() if days is None else In(lake_table(table).partitioned_by,
                                                      sorted(d.isoformat() for d in days))
    return tbl.scan(row_filter=row_filter, selected_fields=columns).to_pandas()


def event_days(events: Iterable[ProducedEvent]) -> set[date]:
    """The UTC days of the events' times, with the day either side (a partition date is the event's day in the
    job's time zone)."""
    days = {datetime.fromtimestamp(e.event_time_ms / 1000, timezone.utc).date() for e in events}
    return {d + timedelta(days=k) for d in days for k in (-1, 0, 1)}


def serving(settings: Settings, query: str, params: tuple = ()) -> list[tuple]:
    """Rows of a query on the serving database, as the read-only role."""
    from loanrisk.serving import serving_connection
    with serving_connection(settings, reader=True) as conn:
        return conn.execute(query, params).fetchall()


# -- the job ------------------------------------------------------------------------------------
def restarts(settings: Settings, job_id: str) -> int:
    """Failovers so far: entries in the job's exception history (each failure that restarted tasks).

    Not the numRestarts metric: on this Flink 2.1 cluster it stayed 0 through TaskManager kills that
    restarted the job three times (region failover), so a "never restarts" check on it could not fail.
    """
    from stack.flink_client import rest
    return len(rest(settings, f"/jobs/{job_id}/exceptions").get("exceptionHistory", {}).get("entries", []))


def restarted_since(settings: Settings, job_id: str, since_ms: float) -> bool:
    """The job entered RESTARTING at or after ``since_ms`` (its state timestamps, not a lagging metric)."""
    from stack.flink_client import rest
    return rest(settings, f"/jobs/{job_id}").get("timestamps", {}).get("RESTARTING", 0) >= since_ms


def late_drops(settings: Settings, job_id: str) -> dict[str, int]:
    """Records each vertex dropped as late, summed over its subtasks, where any were."""
    from stack.flink_client import rest
    out = {}
    for v in rest(settings, f"/jobs/{job_id}")["vertices"]:
        path = f"/jobs/{job_id}/vertices/{v['id']}/subtasks/metrics"
        names = [m["id"] for m in rest(settings, path) if m["id"].endswith("numLateRecordsDropped")]
        got = rest(settings, f"{path}?get={','.join(names)}") if names else []
        total = sum(int(float(m.get("sum", 0))) for m in got)
        if total:
            out[v["name"][:60]] = total
    return out


def prometheus_sum(settings: Settings, metric_suffix: str) -> float | None:
    """Sum of every Prometheus series whose name ends with ``metric_suffix`` (None when there is none)."""
    base = settings.prometheus.url
    with urllib.request.urlopen(f"{base}/api/v1/label/__name__/values", timeout=10) as resp:
        names = [n for n in json.load(resp)["data"] if n.endswith(metric_suffix)]
    if not names:
        return None
    total = 0.0
    for n in names:
        with urllib.request.urlopen(f"{base}/api/v1/query?query={urllib.parse.quote(f'sum({n})')}", timeout=10) as r:
            res = json.load(r)["data"]["result"]
        total += sum(float(x["value"][1]) for x in res)
    return total


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first found, depth first), read from /proc."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def kill_taskmanager(settings: Settings, role: str = "taskmanager") -> int:
    """kill -9 a TaskManager recorded in the stack's PID files (the first, or ``role``: see
    stack.supervisor.taskmanager_role), and its Python UDF workers with it (as a lost machine or container
    takes them: killed alone, the TaskManager leaves them running as orphans); returns its PID."""
    from stack.process import PidFile
    pid = PidFile(settings.state_dir / "run" / f"flink-{role}.pid", "flink").read()
    assert pid is not None, "no live TaskManager PID in the stack's PID file"
    workers = descendants(pid)
    os.kill(pid, signal.SIGKILL)
    for child in workers:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass  # gone with the TaskManager
    return pid


def kill_jobmanager(settings: Settings) -> int:
    """kill -9 the JobManager recorded in the stack's PID file; returns its PID."""
    from stack.process import PidFile
    pid = PidFile(settings.state_dir / "run" / "flink-jobmanager.pid", "flink").read()
    assert pid is not None, "no live JobManager PID in the stack's PID file"
    os.kill(pid, signal.SIGKILL)
    return pid


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, settings: Settings | None = None,
               job_id: str | None = None, every_s: float = 5.0) -> float:
    """Poll ``check``; returns seconds waited; fails with ``what`` on timeout or when the job died."""
    from loanrisk.errors import StackError
    from stack.flink_client import job_exceptions, job_state
    start = time.monotonic()
    last_error = ""
    while time.monotonic() - start < timeout_s:
        try:
            if check():
                return time.monotonic() - start
            if settings is not None and job_id is not None:
                state = job_state(settings, job_id)
                assert state not in {"FAILED", "CANCELED", "FINISHED"}, \
                    f"job {state}: {job_exceptions(settings, job_id)}"
        except StackError as exc:  # a REST call timing out while the cluster fails over: try again
            last_error = f" (last REST error: {exc})"
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}{last_error}")


def two_more_checkpoints(settings: Settings, job_id: str) -> float:
    """Wait until two checkpoints triggered from now on have completed: whatever was in flight now (a doubled row
    too) is committed by then. Seconds waited."""
    from stack.flink_client import checkpoints_completed_since
    now_ms = time.time() * 1000
    return wait_until(lambda: checkpoints_completed_since(settings, job_id, now_ms) >= 2, 120,
                      "two more checkpoints", settings, job_id, 0.5)


def log_files(settings: Settings) -> Iterable[Path]:
    """Every log file the stack writes (service logs, Flink's own log folder)."""
    for path in sorted((settings.state_dir / "logs").rglob("*")):
        if path.is_file():
            yield path


# -- traffic ------------------------------------------------------------------------------------
def valid_stream(seed: int, customers: int, start: str, history_months: int = 1,
                 observe_months: int = 3) -> list[ProducedEvent]:
    """A clean generated stream (ids derive from the seed, so they differ from other tests' streams)."""
    return list(generate(GeneratorConfig(seed=seed, customers=customers, start=start,
                                         history_months=history_months, observe_months=observe_months)))


def landed(settings: Settings, events: list[ProducedEvent]) -> dict[str, set[str]]:
    """Per kind: the expected event ids of ``events`` that are not in their raw lake table yet."""
    missing: dict[str, set[str]] = {}
    for kind, (table, _) in LAKE_RAW.items():
        of_kind = [e for e in events if e.kind == kind]
        if of_kind:
            have = set(lake(settings, table, ("event_id",), event_days(of_kind))["event_id"])
            missing[kind] = {e.event_id for e in of_kind} - have
    return missing


def application_ids(events: list[ProducedEvent]) -> set[str]:
    """application_id of every loan application in ``events``."""
    return {json.loads(e.value_bytes)["application_id"] for e in events if e.kind == "loan_application"}


def wait_all_landed(settings: Settings, job_id: str, events: list[ProducedEvent], timeout_s: float, what: str) -> float:
    """Seconds until every event is in its raw table and every application has its application score."""
    loans = application_ids(events)
    # An application's score is dated by the application's event time: only those days are read.
    days = event_days(e for e in events if e.kind == "loan_application")

    def complete() -> bool:
        if any(landed(settings, events).values()):
            return False
        df = lake(settings, "scores", ("trigger_kind", "loan_id"), days)
        return loans <= set(df[df["trigger_kind"] == "application"]["loan_id"])

    return wait_until(complete, timeout_s, what, settings, job_id, 3)


# The exactly-once promises: each of these counters of exactly_once_report must be 0.
BROKEN_PROMISES = ("raw_loan_applications.repeated_ids", "raw_transactions.repeated_ids", "raw_repayments.repeated_ids",
                   "raw_loan_applications.missing", "raw_transactions.missing", "raw_repayments.missing",
                   "scores.application_rows_repeated", "scores.applications_missing", "postgres.loans_missing",
                   "postgres.loans_with_several_rows", "alerts.repeated_keys", "dlq_topic.repeated_ids")


def assert_exactly_once(before: dict[str, Any], after: dict[str, Any], what: str) -> None:
    """Every promise counter of ``after`` is 0 and the dead-letter totals are still those of ``before``."""
    broken = {k: after[k] for k in BROKEN_PROMISES if after[k] != 0}
    assert not broken, (what, broken)
    assert (after["dlq_topic.total"], after["dlq_lake.total"]) == (before["dlq_topic.total"],
                                                                  before["dlq_lake.total"]), what


@dataclass
class Sinks:
    """What every sink held at one moment, read once and reconciled against any number of streams."""

    raw_ids: dict[str, pd.Series]
    application_loans: pd.Series
    alert_keys: Counter
    dlq_topic_ids: Counter
    dlq_lake_total: int


def read_sinks(settings: Settings) -> Sinks:
    """The raw tables' event ids, the application scores, the alert and dead-letter topics, the dead-letter table."""
    scores = lake(settings, "scores", ("trigger_kind", "loan_id", "role"))
    # One scoring is the champion's row (a NULL role: written before the column); shadow challengers add their own.
    scores = scores[scores["role"].isna() | (scores["role"] == CHAMPION_ROLE)]
    return Sinks(
        raw_ids={table: lake(settings, table, ("event_id",))["event_id"] for table, _ in LAKE_RAW.values()},
        application_loans=scores[scores["trigger_kind"] == "application"]["loan_id"],
        alert_keys=Counter(r.key for r in read_topic(settings, settings.kafka.topics.alerts)),
        dlq_topic_ids=Counter(json.loads(r.value)["dlq_id"]
                              for r in read_topic(settings, settings.kafka.topics.dead_letters)),
        dlq_lake_total=len(lake(settings, "dead_letters", ("dlq_id",))))


def exactly_once_report(settings: Settings, events: list[ProducedEvent], sinks: Sinks | None = None) -> dict[str, Any]:
    """What the exactly-once promises look like for ``events`` and globally; asserted by the caller."""
    sinks = sinks or read_sinks(settings)
    report: dict[str, Any] = {}
    for kind, (table, _) in LAKE_RAW.items():
        ids = sinks.raw_ids[table]
        want = {e.event_id for e in events if e.kind == kind}
        report[f"{table}.repeated_ids"] = int(ids.duplicated().sum())
        report[f"{table}.missing"] = len(want - set(ids))
    apps = sinks.application_loans
    loans = application_ids(events)
    report["scores.application_rows_repeated"] = int(apps.duplicated().sum())
    report["scores.applications_missing"] = len(loans - set(apps))
    pg = {r[0]: r[1] for r in serving(settings, "SELECT loan_id, count(*) FROM loan_scores_latest "
                                                "WHERE loan_id = ANY(%s) GROUP BY loan_id", (list(loans),))}
    report["postgres.loans_missing"] = len(loans - set(pg))
    report["postgres.loans_with_several_rows"] = sum(1 for n in pg.values() if n != 1)
    report["alerts.total"] = sum(sinks.alert_keys.values())
    report["alerts.repeated_keys"] = sum(1 for n in sinks.alert_keys.values() if n > 1)
    report["dlq_topic.total"] = sum(sinks.dlq_topic_ids.values())
    report["dlq_topic.repeated_ids"] = sum(1 for n in sinks.dlq_topic_ids.values() if n > 1)
    report["dlq_lake.total"] = sinks.dlq_lake_total
    return report


# -- hostile input ------------------------------------------------------------------------------
FAR_DATES = ("9999-12-31T23:59:59.999Z", "2999-01-01T00:00:00.000Z", "2100-06-01T12:00:00.000Z",
             "1900-01-01T00:00:00.000Z", "1970-01-01T00:00:00.000Z", "0001-01-01T00:00:00.000Z",
             "1999-12-31T23:59:59.999Z")
ODD_UNICODE = ("west\u202e", "\uff57\uff45\uff53\uff54", "west\u200b", "we\u0000st", "\U0001f3e6\U0001f4b8",
               "USD\ufeff", "\u0645\u0635\u0631\u0641", "Z\u0351\u0358a\u0352l\u0353g\u0354o", "\ud800", "\udfff\ud800")
SQLISH = ("west'; DROP TABLE loan_scores_latest; --", "1 OR 1=1", "\" UNION SELECT password FROM pg_authid --",
          "'); DELETE FROM risk.scores WHERE ('1'='1", "${jndi:ldap://127.0.0.1/a}", "Robert'); DROP TABLE Students;--")
CATEGORIES = ("invalid_json", "nan_infinity", "wrong_type", "missing_field", "negative_amount", "far_date",
              "odd_unicode", "sql_like", "out_of_range")


def _with(event: dict, **changes: Any) -> dict:
    out = dict(event)
    out.update(changes)
    return out


def _hostile_value(kind: str, template: dict, category: str, i: int, rng: random.Random) -> bytes:
    """One bad message of ``category`` built from a valid ``template`` of ``kind``."""
    ev = dict(template)
    amount, choice, text = AMOUNT[kind], CHOICE[kind], TEXT[kind]
    if category == "invalid_json":
        variant = i % 8
        if variant == 0:
            raw = encode_event(ev)
            return raw[: rng.randint(1, len(raw) - 2)]
        if variant == 1:
            return bytes([0xFF, 0xFE]) + rng.randbytes(rng.randint(1, 200))
        return (b"[1,2,3]", b'"a string"', b"null", b"", b"{\"event_id\": }", b"{'single': 'quotes'}")[variant - 2]
    if category == "nan_infinity":
        token = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999")[i % 5]
        field = "interest_rate" if kind == "loan_application" and token.endswith("e999") else amount
        return encode_event(_with(ev, **{field: 0})).replace(f'"{field}":0'.encode(), f'"{field}":{token}'.encode())
    if category == "wrong_type":
        variant = i % 6
        changes = ({amount: f"{rng.randint(1, 10**6) / 100:.2f}"}, {amount: True}, {"event_time": 1514764800000},
                   {"customer_id": rng.randint(1, 10**9)}, {amount: {"value": 1}}, {"schema_version": [1]})[variant]
        return encode_event(_with(ev, **changes))
    if category == "missing_field":
        name = rng.choice(CONTRACTS[kind].required)
        if i % 2:
            ev.pop(name)
        else:
            ev[name] = None
        return encode_event(ev)
    if category == "negative_amount":
        return encode_event(_with(ev, **{amount: -rng.randint(1, 10**12)}))
    if category == "far_date":
        return encode_event(_with(ev, event_time=FAR_DATES[i % len(FAR_DATES)]))
    if category == "odd_unicode":
        odd = ODD_UNICODE[i % len(ODD_UNICODE)]
        # json.dumps writes lone surrogates as \ud800 escapes (orjson refuses them): still a JSON string.
        return json.dumps(_with(ev, **{choice: odd, text: odd * 3}), ensure_ascii=bool(i % 2)).encode(
            "utf-8", errors="surrogatepass")
    if category == "sql_like":
        sql = SQLISH[i % len(SQLISH)]
        field = (choice, amount, "event_time", "source")[i % 4]
        return encode_event(_with(ev, **{field: sql, text: sql}))
    if category == "out_of_range":
        field, value = {"loan_application": (("term_months", 481), ("interest_rate", 100.5), ("schema_version", 99)),
                        "transaction": (("schema_version", 0), ("amount_minor", -1), ("currency", "XXX")),
                        "repayment": (("installment_no", 0), ("days_past_due", -5), ("schema_version", 99))}[kind][i % 3]
        return encode_event(_with(ev, **{field: value}))
    raise ValueError(category)


def hostile_messages(templates: dict[str, dict], topics: dict[str, str], run: str, count: int,
                     huge_sizes: list[int], rng: random.Random) -> list[Outgoing]:
    """``count`` bad messages spread over every category and contract, plus one per ``huge_sizes`` string size."""
    out = []
    kinds = sorted(templates)
    for i in range(count):
        kind, category = kinds[i % len(kinds)], CATEGORIES[(i // len(kinds)) % len(CATEGORIES)]
        template = _with(templates[kind], event_id=f"hostile-{run}-{i}")
        out.append(Outgoing(topics[kind], template["customer_id"], _hostile_value(kind, template, category, i, rng),
                            category, f"hostile-{run}-{i}"))
    for j, size in enumerate(huge_sizes):
        kind = kinds[j % len(kinds)]
        filler = ("\u00e9" if j % 3 == 0 else "A") * size
        template = _with(templates[kind], event_id=f"hostile-{run}-huge-{j}", **{TEXT[kind]: filler})
        out.append(Outgoing(topics[kind], template["customer_id"], encode_event(template), "huge_string",
                            template["event_id"]))
    return out


def mixed_stream(valid: list[Outgoing], hostile: list[Outgoing], repeat: dict[int, int],
                 rng: random.Random) -> list[Outgoing]:
    """``valid`` in order, ``hostile`` at random places, and ``repeat[i]`` extra copies of ``valid[i]`` after it."""
    placed: list[tuple[float, int, Outgoing]] = [(float(i), 0, m) for i, m in enumerate(valid)]
    placed += [(rng.uniform(0, len(valid)), 1, m) for m in hostile]
    for i, copies in repeat.items():
        m = valid[i]
        placed += [(i + rng.uniform(0.5, 300), 2, Outgoing(m.topic, m.key, m.value, "duplicate", m.event_id))
                   for _ in range(copies)]
    return [m for _, _, m in sorted(placed, key=lambda t: (t[0], t[1]))]


def files_under(root: Path) -> list[Path]:
    """Every regular file below ``root``, sorted: sockets and other special files (PostgreSQL's Unix socket)
    are left out, and so is whatever a live store removes while it is listed (os.walk skips a folder that
    vanished, where Path.rglob would raise)."""
    import stat
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            try:
                if stat.S_ISREG(path.lstat().st_mode):
                    found.append(path)
            except FileNotFoundError:
                continue
    return sorted(found)


def file_sizes(paths: list[Path]) -> int:
    """Total bytes of ``paths``, those removed meanwhile counting 0."""
    total = 0
    for p in paths:
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def files_containing(root: Path, needles: dict[str, str], decode: bool = False) -> dict[str, list[str]]:
    """Which files under ``root`` contain which needle (read in chunks: some files are large).

    ``decode``: an Avro, Parquet or gzip file is also searched as it reads decoded (tests/lake_bytes.py): the
    lake's manifests and data files are compressed, and a raw scan would miss what they hold.
    A file that disappears while the folder is read (a live store removing it) holds nothing any more.
    """
    from tests.lake_bytes import AVRO_MAGIC, GZIP_MAGIC, PARQUET_MAGIC, decoded
    hits: dict[str, list[str]] = {}
    encoded = {name: value.encode() for name, value in needles.items()}
    longest = max(len(v) for v in encoded.values())
    for path in files_under(root):
        tail = b""
        try:
            if decode:
                with path.open("rb") as fh:
                    magic = fh.read(4)
                if magic.startswith((AVRO_MAGIC, PARQUET_MAGIC, GZIP_MAGIC)):
                    views = list(decoded(path.read_bytes()))  # decoded once, searched for every needle
                    found = [name for name, value in encoded.items() if any(value in view for view in views)]
                    if found:
                        hits[str(path)] = found
                    continue
            with path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    window = tail + chunk
                    for name, value in encoded.items():
                        if value in window and name not in hits.get(str(path), []):
                            hits.setdefault(str(path), []).append(name)
                    tail = window[-longest:]
        except FileNotFoundError:
            continue
    return hits
