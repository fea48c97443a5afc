"""Reliability and security on the real stack, against the session's RUNNING risk job (after test_risk_job).

Default tier: hostile input (>= 10,000 bad messages mixed into valid traffic), a corrupt and an
incompatible champion, a TaskManager then a JobManager kill -9 in one stream, PII seeding and an
erasure request. Every test sends its own events (seeds and ids of its own) and asserts on those, plus
the global exactly-once properties (no repeated id in any sink). Each prints its figures.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from contracts.registry_layout import METADATA_FILE, MODEL_FILE, champion_path, version_path
from ingestion.wire import topics_from_settings
from loanrisk.settings import Settings
from tests.stack.conftest import RiskRun
from stack.flink_client import all_tasks_running, last_checkpoint_ms, operator_metric
from tests.stack.reliability_helpers import (
    LAKE_RAW, Outgoing, application_ids, assert_exactly_once, exactly_once_report,
    hostile_messages, kill_jobmanager, kill_taskmanager, lake, landed, log_files, mixed_stream,
    prometheus_sum, read_topic, restarted_since, restarts, send_tracked, serving, two_more_checkpoints, valid_stream,
    file_sizes, files_containing, files_under, wait_all_landed, wait_until,
)

pytestmark = pytest.mark.stack

RUN = uuid.uuid4().hex[:8]
HOSTILE_COUNT = 10_080
HUGE_SIZES = [70_000, 100_000, 250_000, 500_000, 750_000, 1_000_000] * 5  # characters of one string field


def outgoing(events: list) -> list[Outgoing]:
    """Generated events as messages to send."""
    return [Outgoing(e.topic, e.key, e.value_bytes, "valid", e.event_id) for e in events]


def test_hostile_input_is_dead_lettered_with_reasons_valid_events_land_and_the_job_never_restarts(
        risk_run: RiskRun, caplog: pytest.LogCaptureFixture) -> None:
    s, job = risk_run.settings, risk_run.job_id
    rng = random.Random(9009)
    events = valid_stream(seed=9009, customers=40, start="2018-03-01T00:00:00Z")
    valid = outgoing(events)
    templates = {kind: json.loads(next(e for e in events if e.kind == kind).value_bytes)
                 for kind in LAKE_RAW}
    hostile = hostile_messages(templates, topics_from_settings(s.kafka.topics), RUN, HOSTILE_COUNT, HUGE_SIZES, rng)
    rng.shuffle(hostile)
    repeat = {i: (3 if n % 5 == 0 else 1) for n, i in enumerate(rng.sample(range(len(valid)), 150))}
    stream = mixed_stream(valid, hostile, repeat, rng)
    restarts_before = restarts(s, job)
    started_ms = time.time() * 1000

    started = time.monotonic()
    where = send_tracked(s, stream)
    sent_s = time.monotonic() - started
    bad = {where[i]: m for i, m in enumerate(stream) if m.category not in ("valid", "duplicate")}
    good = {where[i] for i, m in enumerate(stream) if m.category in ("valid", "duplicate")}
    assert len(bad) == len(hostile) >= 10_000

    # A message over the configured limit is refused at the producer, with a clear error, and counted.
    from ingestion.producer import make_producer
    producer = make_producer(kafka=s.kafka)
    with caplog.at_level(logging.ERROR, logger="ingestion.producer"):
        assert not producer.send(s.kafka.topics.applications, "c", b"x" * (s.kafka.max_message_bytes + 1))
    producer.close(10)
    assert (producer.stats.refused_too_large, producer.stats.enqueued) == (1, 0)
    assert "over kafka.max_message_bytes" in caplog.text and "LOANRISK_KAFKA__MAX_MESSAGE_BYTES" in caplog.text

    dup_ids = {valid[i].event_id: copies for i, copies in repeat.items()}
    key_cols = ["source_topic", "source_partition", "source_offset"]

    def dead_letters(*extra: str) -> pd.DataFrame:
        df = lake(s, "dead_letters", (*key_cols, "reason", *extra))
        df["key"] = list(zip(df["source_topic"], df["source_partition"].astype(int), df["source_offset"].astype(int)))
        return df

    def repeated() -> dict[str, int]:
        return {r[0]: int(r[1]) for r in serving(s, "SELECT event_id, repeats FROM repeated_events "
                                                    "WHERE event_id = ANY(%s)", (list(dup_ids),))}

    def done() -> bool:
        return (set(bad) <= set(dead_letters()["key"]) and not any(landed(s, events).values())
                and repeated() == dup_ids)

    waited = wait_until(done, 600, "every hostile message dead-lettered and every valid event landed", s, job, 3)
    two_more_checkpoints(s, job)  # anything doubled would show now
    dlq = dead_letters("payload_bytes", "payload")
    mine = dlq[dlq["key"].isin(set(bad))]
    reasons = Counter(mine["reason"])
    by_category = Counter((bad[k].category, r.split(":")[0]) for k, r in zip(mine["key"], mine["reason"]))
    print(f"\nhostile input: {len(bad)} bad + {len(valid)} valid + {sum(repeat.values())} repeated messages sent "
          f"in {sent_s:.1f}s; all landed {waited:.0f}s after sending; {len(reasons)} distinct reasons")
    print("category -> reason kind:", dict(sorted(by_category.items())))
    print("huge strings: payload_bytes", sorted(mine[mine["reason"] == "too_large"]["payload_bytes"])[:3], "...")

    assert mine["key"].is_unique, "a hostile message was dead-lettered twice in the lake"
    assert len(mine) == len(bad)
    assert mine["reason"].str.len().gt(0).all()
    assert not set(dlq["key"]) & good, "a valid message was dead-lettered"
    assert set(mine[mine["key"].map(lambda k: bad[k].category) == "huge_string"]["reason"]) == {"too_large"}
    assert mine["payload"].str.len().max() <= 65_536 + 1024, "a dead-letter payload was not cut"

    topic_keys = Counter((d["source_topic"], d["source_partition"], d["source_offset"])
                         for d in (json.loads(r.value) for r in read_topic(s, s.kafka.topics.dead_letters)))
    assert all(topic_keys[k] == 1 for k in bad), "dead-letter topic: a hostile message missing or repeated"
    assert not set(topic_keys) & good

    for table, _ in LAKE_RAW.values():
        assert lake(s, table, ("event_id",))["event_id"].is_unique, f"{table} holds a repeated event id"
    scores = lake(s, "scores", ("trigger_kind", "loan_id"))
    apps = scores[(scores["trigger_kind"] == "application") & scores["loan_id"].isin(application_ids(events))]
    assert apps["loan_id"].is_unique and set(apps["loan_id"]) == application_ids(events)
    assert repeated() == dup_ids, "repeated event ids were not all counted"
    assert restarts(s, job) == restarts_before, "hostile input made the job restart"
    assert not restarted_since(s, job, started_ms), "hostile input made the job restart"
    assert all_tasks_running(s, job)


def _point_champion(registry, version: str, previous: str) -> None:
    """Move the champion pointer as a careless promotion would (no checks)."""
    pointer = {"version": version, "promoted_at": datetime.now(timezone.utc).isoformat(), "previous": previous,
               "history": [previous], "forced": True, "comparison": None}
    registry.store.write(champion_path(registry.root), json.dumps(pointer).encode())


def test_a_corrupt_or_incompatible_champion_leaves_scoring_on_the_last_good_model_and_shows_in_metrics_and_logs(
        risk_run: RiskRun) -> None:
    if risk_run.settings.flink.scorer != "onnx":
        pytest.skip("the job ran with the built-in scorer")
    from models.registry import Registry
    s, job = risk_run.settings, risk_run.job_id
    registry = Registry.from_settings(s.model.registry(s.s3))
    good = str(registry.champion()["version"])
    model_bytes, meta = registry.load(good)
    corrupt = registry.register(model_bytes, meta)
    registry.store.write(version_path(registry.root, corrupt, MODEL_FILE), b"\x08\x07 this is not an ONNX model")
    incompatible = registry.register(model_bytes, meta)
    bad_meta = {**registry.metadata(incompatible), "feature_names": [*meta["feature_names"][:-1], "shoe_size"]}
    bad_meta.pop("feature_schema_hash", None)
    registry.store.write(version_path(registry.root, incompatible, METADATA_FILE), json.dumps(bad_meta).encode())
    failures_before = operator_metric(s, job, "model_load_failures")
    prom_before = prometheus_sum(s, "model_load_failures") or 0.0
    restarts_before = restarts(s, job)
    try:
        for n, bad_version in enumerate((corrupt, incompatible)):
            _point_champion(registry, bad_version, good)
            time.sleep(3 * s.model.poll_interval_s + 2)
            apps = [e for e in valid_stream(seed=6100 + n, customers=15, start="2018-06-01T00:00:00Z",
                                            history_months=0) if e.kind == "loan_application"]
            send_tracked(s, outgoing(apps))
            loans = application_ids(apps)

            def scored() -> bool:
                df = lake(s, "scores", ("trigger_kind", "loan_id", "model_version"))
                return set(df[(df["trigger_kind"] == "application") & df["loan_id"].isin(loans)]["loan_id"]) == loans  # noqa: B023 - called at once

            wait_until(scored, 300, f"applications scored while {bad_version} is champion", s, job)
            df = lake(s, "scores", ("trigger_kind", "loan_id", "model_version"))
            versions = set(df[df["loan_id"].isin(loans)]["model_version"])
            print(f"champion {bad_version} ({'corrupt' if n == 0 else 'incompatible'}): {len(loans)} new "
                  f"applications scored with {sorted(versions)}")
            assert versions == {good}
        def counted() -> bool:
            prom = prometheus_sum(s, "model_load_failures")
            return (operator_metric(s, job, "model_load_failures") >= failures_before + 2
                    or (prom is not None and prom >= prom_before + 2))

        wait_until(counted, 120, "model_load_failures to rise (REST or Prometheus)", every_s=5)
        marker = f"champion {corrupt} not loaded, still scoring with {good}"
        found: list[str] = []

        def logged() -> bool:
            found[:] = [str(p) for p in log_files(s) if marker in p.read_text(errors="replace")]
            return bool(found)

        wait_until(logged, 60, f"the log line {marker!r}", every_s=5)
        print(f"model_load_failures {failures_before:.0f} -> {operator_metric(s, job, 'model_load_failures'):.0f} "
              f"(REST); Prometheus sum: {prometheus_sum(s, 'model_load_failures')}; logged in {found}")
        assert restarts(s, job) == restarts_before
    finally:
        _point_champion(registry, good, incompatible)


def _corrupt_champion(settings, good: str) -> str:
    """Register a copy of ``good`` with a model file that is not ONNX and point the champion at it."""
    from models.registry import Registry
    registry = Registry.from_settings(settings.model.registry(settings.s3))
    model_bytes, meta = registry.load(good)
    corrupt = registry.register(model_bytes, meta)
    registry.store.write(version_path(registry.root, corrupt, MODEL_FILE), b"\x08\x07 this is not an ONNX model")
    _point_champion(registry, corrupt, good)
    return corrupt


# One stream, two faults in a row, each while the producer sends: a TaskManager kill -9, recovered by the
# job itself, then a JobManager kill -9 once a checkpoint completed after the first recovery.
# The TaskManager's restart is read from the job's RESTARTING timestamp: the numRestarts metric lags while
# the cluster fails over (its fetcher still asks the dead TaskManager), and REST calls may time out then.
# The champion is corrupt throughout: the new Python workers of each recovery start on the last good model.
# A standalone JobManager keeps no job across a restart (no high availability here): the supervisor starts a
# new one, restarts the TaskManager, and resubmits the risk job from its latest checkpoint on the object
# store, once, as a new job id, which the session's RiskRun then follows.
def test_taskmanager_then_jobmanager_kill_mid_stream_recover_by_themselves_with_every_sink_exactly_once(
        risk_run: RiskRun) -> None:
    from models.registry import Registry
    s = risk_run.settings
    events = valid_stream(seed=5151, customers=45, start="2019-06-01T00:00:00Z")
    msgs = outgoing(events)
    before = exactly_once_report(s, [])
    registry = Registry.from_settings(s.model.registry(s.s3))
    good = str(registry.champion()["version"])
    corrupt = _corrupt_champion(s, good)
    try:
        sent: list = []
        sender = threading.Thread(target=lambda: sent.append(send_tracked(s, msgs, pace_per_s=len(msgs) / 70)))
        sender.start()
        time.sleep(10)
        _kill_taskmanager_and_recover(risk_run, len(msgs), corrupt)
        _kill_jobmanager_and_resume(risk_run)
        sender.join(300)
        assert sent, "the producer did not finish"
        job = risk_run.job_id
        landed_s = wait_all_landed(s, job, events, 600, "every event of the stream landed after both kills")
        two_more_checkpoints(s, job)
        after = exactly_once_report(s, events)
        scores = lake(s, "scores", ("trigger_kind", "loan_id", "model_version"))
        versions = Counter(scores[scores["loan_id"].isin(application_ids(events))
                                  & (scores["trigger_kind"] == "application")]["model_version"])
        print(f"every event of the stream landed {landed_s:.0f}s after the producer finished; application scores by "
              f"model {dict(versions)}")
        print("exactly-once report:", after)
        assert_exactly_once(before, after, "TaskManager and JobManager kills")
        assert all_tasks_running(s, job)
        assert set(versions) == {good}, "scores after the kills came from another model than the last good one"
    finally:
        _point_champion(registry, good, corrupt)


def _kill_taskmanager_and_recover(risk_run: RiskRun, sending: int, corrupt: str) -> None:
    """kill -9 the TaskManager; the job restarts by itself, runs every task and completes two checkpoints
    without restarting again."""
    s, job = risk_run.settings, risk_run.job_id
    restarts_before = restarts(s, job)
    killed_at = time.time()
    pid = kill_taskmanager(s)
    restarted_s = wait_until(lambda: restarted_since(s, job, killed_at * 1000), 180, "the job to restart",
                             every_s=1)
    running_s = wait_until(lambda: all_tasks_running(s, job), 300, "every task RUNNING again", s, job, 1)
    checkpoint_s = wait_until(lambda: last_checkpoint_ms(s, job) > killed_at * 1000, 300,
                              "a checkpoint completed after the kill", s, job, 1)
    failovers_of_the_kill = restarts(s, job)
    print(f"\nTaskManager kill -9 (pid {pid}) with the producer sending {sending} events over 70 s and champion "
          f"{corrupt} corrupt: restart seen {restarted_s:.0f}s, tasks RUNNING {running_s + restarted_s:.0f}s, next "
          f"checkpoint {checkpoint_s + running_s + restarted_s:.0f}s after the kill; failovers {restarts_before} "
          f"-> {failovers_of_the_kill}")
    assert failovers_of_the_kill > restarts_before, "the kill did not restart the job"
    first = last_checkpoint_ms(s, job)
    wait_until(lambda: last_checkpoint_ms(s, job) > first, 300, "a second checkpoint after the kill", s, job, 1)
    assert all_tasks_running(s, job)
    assert restarts(s, job) == failovers_of_the_kill, "the job restarted again after recovering from the kill"


def _kill_jobmanager_and_resume(risk_run: RiskRun) -> None:
    """kill -9 the JobManager; the supervisor resubmits the job once, from the old job's latest checkpoint, and
    ``risk_run`` follows the new job id."""
    from jobs.params import RISK_JOB_NAME
    from stack.flink_client import list_jobs, rest
    from stack.flink_conf import checkpoint_dir
    from stack.recovery import ALIVE, latest_restore_point
    s, old_job = risk_run.settings, risk_run.job_id
    point = latest_restore_point(s, RISK_JOB_NAME)
    assert point is not None and point.job_id == old_job, \
        f"no checkpoint of job {old_job} under {checkpoint_dir(s, RISK_JOB_NAME)} (latest: {point})"
    pid = kill_jobmanager(s)
    resumed: list[str] = []

    def live_risk_jobs() -> list[str]:
        return [j["jid"] for j in list_jobs(s) if j["name"] == RISK_JOB_NAME and j["state"] in ALIVE]

    def back() -> bool:
        resumed[:] = [jid for jid in live_risk_jobs() if jid != old_job]
        return bool(resumed) and all_tasks_running(s, resumed[0])

    back_s = wait_until(back, 600, "the risk job RUNNING again under a new job id", every_s=2)
    job = risk_run.job_id = resumed[0]
    restored = (rest(s, f"/jobs/{job}/checkpoints").get("latest") or {}).get("restored") or {}
    checkpoint_s = wait_until(lambda: last_checkpoint_ms(s, job) > 0, 300, "a checkpoint of the resumed job", s, job, 1)
    said = [line for line in (s.state_dir / "logs" / "flink.log").read_text(errors="replace").splitlines()
            if f"resumed {RISK_JOB_NAME} as job" in line]
    print(f"JobManager kill -9 (pid {pid}): job {old_job[:8]} -> {job[:8]} RUNNING {back_s:.0f}s after the kill, "
          f"restored {restored.get('external_path')}; first checkpoint {checkpoint_s:.0f}s later")
    print("supervisor:", said[-1:] or "no resume line")
    # Restored from the old job's retained checkpoint (Flink reports any restore from a path given at
    # submission with is_savepoint true, so the path tells which it was).
    assert f"/{RISK_JOB_NAME}/{old_job}/chk-" in str(restored.get("external_path")), restored
    assert live_risk_jobs() == [job], "the risk job was resubmitted more than once"
    assert len([line for line in said if job in line]) == 1


PII_RUN = RUN.upper()


def _with_pii(event: dict, index: int) -> dict:
    """The event with distinctive PII values (so a search for them cannot hit anything else)."""
    out = dict(event)
    if "full_name" in out:
        out.update(full_name=f"Quillon Zarathustra-{PII_RUN}{index}", email=f"quillon.{RUN}{index}@erasure-test.example",
                   phone=f"+44 7700 9{index:02d}{RUN[:4].encode().hex()[:4]}")
    if "account_number" in out:
        out.update(account_number=f"ACCT{PII_RUN}{index:04d}", counterparty=f"Ysolde Vantablack-{PII_RUN}{index}")
    return out


def _distinctive(events: list[dict]) -> set[str]:
    return {str(e[k]) for e in events for k in ("full_name", "email", "phone", "account_number", "counterparty")
            if e.get(k)}


def _pseudonym(s, value: str) -> str:
    """What the job must store for a PII value: the key id and the HMAC-SHA256 under the session's key."""
    import hashlib
    import hmac
    key = s.privacy.key()
    assert key, "the session configures a PII key file (tests/conftest.py)"
    return f"{s.privacy.pii_key_id}:{hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()}"


def _check_pseudonyms(s, app_docs: list[dict]) -> None:
    """The lake's PII columns and the dead letters' PII fields hold the keyed pseudonym of the value sent."""
    ids = {d["event_id"]: d for d in app_docs}
    raw = lake(s, "raw_loan_applications", ("event_id", "full_name", "email"))
    raw = raw[raw["event_id"].isin(set(ids))]
    assert len(raw) == len(ids)
    for row in raw.itertuples():
        assert (row.full_name, row.email) == (_pseudonym(s, ids[row.event_id]["full_name"]),
                                              _pseudonym(s, ids[row.event_id]["email"]))
    letters = [json.loads(p) for p in lake(s, "dead_letters", ("payload",))["payload"] if f"pii-bad-{RUN}" in p]
    sent = {_pseudonym(s, d["full_name"]) for d in app_docs}
    assert letters and {d["full_name"] for d in letters} <= sent, "a dead letter's pseudonym differs from the lake's"
    print(f"pseudonyms: {len(raw)} lake rows and {len(letters)} dead letters hold HMAC-SHA256 "
          f"({s.privacy.pii_key_id}:...) of the values sent")


def test_pii_reaches_kafka_but_no_sink_and_an_erasure_request_removes_a_customer_everywhere(
        risk_run: RiskRun) -> None:
    s, job = risk_run.settings, risk_run.job_id
    from ingestion.wire import encode_event
    events = valid_stream(seed=7171, customers=6, start="2018-07-01T00:00:00Z")
    customers = sorted({e.key for e in events})
    index = {c: i for i, c in enumerate(customers)}
    docs = [_with_pii(json.loads(e.value_bytes), index[e.key]) for e in events]
    msgs = [Outgoing(e.topic, e.key, encode_event(d), "valid", e.event_id) for e, d in zip(events, docs)]
    # One dead-lettered copy per customer too (amount missing): its payload must be redacted as well.
    app_docs = [d for d in docs if "application_id" in d]
    msgs += [Outgoing(s.kafka.topics.applications, d["customer_id"],
                      encode_event({**d, "event_id": f"pii-bad-{RUN}-{n}", "amount_minor": None}), "bad")
             for n, d in enumerate(app_docs)]
    secrets = _distinctive(docs)
    clock = _Phases()
    send_tracked(s, msgs)
    wait_until(lambda: not any(landed(s, events).values()), 300, "the PII events landed", s, job)
    wait_until(lambda: int(lake(s, "dead_letters", ("payload",))["payload"].str.contains(
        f"pii-bad-{RUN}", regex=False).sum()) == len(app_docs), 120, "the PII dead letters", s, job)
    two_more_checkpoints(s, job)
    clock.lap("landed")
    _check_pseudonyms(s, app_docs)
    _sync_warehouse(s)
    clock.lap("warehouse sync")
    kafka_text = b"\n".join(r.value for t in (s.kafka.topics.applications, s.kafka.topics.transactions)
                            for r in read_topic(s, t)).decode(errors="replace")
    in_kafka = {v for v in secrets if v in kafka_text}
    lake_text = _lake_text(s)
    found = _find_anywhere(s, secrets, lake_text)
    clock.lap("search")
    print(f"\nPII: {len(secrets)} distinctive values; {len(in_kafka)} found in the Kafka input; in sinks: {found}")
    assert in_kafka == secrets, "the seeded PII should be visible in the Kafka input (else the test proves nothing)"
    assert not found, found

    # Erasure: one customer, every sink; the other customers stay.
    victim, other = customers[0], customers[1]
    victim_forms = _stored_forms(s, victim, [d for d in docs if d["customer_id"] == victim])
    seen = _in_the_object_store(s, victim_forms)
    clock.lap("scan for the customer")
    print(f"before the erasure, the object store holds {victim}'s identifiers in {len(seen)} file(s):",
          Counter(Path(path).suffix for path in seen), "; forms found:",
          Counter(name for names in seen.values() for name in names))
    assert {"customer_id", *_pseudonyms_of(victim_forms)} <= {n for names in seen.values() for n in names}, (
        "the decoded scan must find the customer's id and pseudonyms before the erasure, or it proves nothing")
    before = _rows_of(s, [victim, other], lake_text)
    assert sum(before[other].values()) > 0 and sum(before[victim].values()) > 0
    clock.lap("count rows")
    import subprocess
    import sys
    cli = Path(sys.executable).with_name("riskctl")
    dry = subprocess.run([str(cli), "-v", "privacy", "erase", "--customer", victim, "--dry-run"], capture_output=True,
                         text=True, timeout=600)
    print(dry.stdout + dry.stderr)
    clock.lap("dry run")
    assert dry.returncode == 0, dry.stderr
    proc = subprocess.run([str(cli), "-v", "privacy", "erase", "--customer", victim], capture_output=True, text=True,
                          timeout=600)
    print(proc.stdout + proc.stderr)
    clock.lap("erase")
    assert proc.returncode == 0, proc.stderr
    # The dry run changed nothing: the erasure found, table by table, the rows it counted.
    import re
    per_table = re.compile(r"^([\w.]+): (\d+) row\(s\) (?:would be )?removed$")
    counted, removed = ([m.groups() for m in map(per_table.match, out.splitlines()) if m] for out in (dry.stdout,
                                                                                                     proc.stdout))
    assert counted and counted == removed, "the erasure found other rows than its dry run counted"
    # The job's latest commit still references the old files of the tables it has not committed to since; once it
    # has, the request made again (as the ledger replay does) expires them.
    waiting = _kept_for_the_job(proc.stdout)
    waited = _wait_for_a_job_commit(s, job, waiting)
    again = subprocess.run([str(cli), "-v", "privacy", "erase", "--customer", victim, "--no-warehouse"],
                           capture_output=True, text=True, timeout=600)
    print(f"waited {waited:.0f}s for the job to commit to {sorted(waiting)}; the request again:\n{again.stdout}"
          f"{again.stderr}")
    clock.lap("erase again after the job's commit")
    assert again.returncode == 0, again.stderr
    assert not _kept_for_the_job(again.stdout), "a snapshot from before the erasure is still kept"
    _scan_stores_for(s, secrets, victim_forms)
    clock.lap("byte scan")
    after = _rows_of(s, [victim, other], _lake_text(s, only=("customer_id", "payload")))
    assert sum(after[victim].values()) == 0, after[victim]
    assert after[other] == before[other]
    clock.lap("count rows again")
    # The erasure is in the ledger, due to be applied again while a source could bring the rows back.
    replay = subprocess.run([str(cli), "privacy", "replay", "--dry-run", "--no-warehouse"], capture_output=True,
                            text=True, timeout=600)
    print(replay.stdout + replay.stderr)
    clock.lap("replay dry run")
    assert replay.returncode == 0, replay.stderr
    assert f"{victim}: 0 row(s) would be removed again" in replay.stdout.splitlines()
    print("PII test phases:", clock)
    assert all_tasks_running(s, job)


def _stored_forms(s, customer_id: str, their_events: list[dict]) -> dict[str, str]:
    """Every form in which the lake stores what identifies the customer: their id, the pseudonym of each of their
    PII values, and the first 16 characters of each (what a truncated column bound in a manifest keeps)."""
    forms = {"customer_id": customer_id}
    forms.update({f"pseudonym of {v}": _pseudonym(s, v) for v in _distinctive(their_events)})
    forms.update({f"{name} as a bound": value[:16] for name, value in list(forms.items())})
    return forms


def _pseudonyms_of(forms: dict[str, str]) -> set[str]:
    return {name for name in forms if name.startswith("pseudonym of") and not name.endswith(" as a bound")}


def _object_store(s) -> Path:
    return s.state_dir / "s3" / "data"


def _in_the_object_store(s, forms: dict[str, str]) -> dict[str, list[str]]:
    """Files of the object store holding any of ``forms``, decoded (Avro blocks, Parquet values)."""
    return files_containing(_object_store(s), forms, decode=True)


def _kept_for_the_job(erase_output: str) -> set[str]:
    """Lake tables whose history an erasure had to keep for the job's last commit (its lines say so)."""
    import re
    return {m.group(1) for m in re.finditer(r"^lake\.(\w+): history: .*kept for the job's last commit", erase_output,
                                            re.MULTILINE)}


def _wait_for_a_job_commit(s, job: str, tables: set[str]) -> float:
    """Until the job has committed on top of what an erasure left in each of ``tables`` (with no rows to commit,
    the Iceberg committer commits every tenth checkpoint). Lake maintenance may commit on top of the job's commit."""
    from erasure.customer import kept_from_before_an_erasure
    from loanrisk.lake import catalog

    def committed() -> bool:
        cat = catalog(s)
        return not any(kept_from_before_an_erasure(cat.load_table(f"{s.catalog.namespace}.{t}")) for t in tables)
    return wait_until(committed, 300, f"a job commit to each of {sorted(tables)}", s, job) if tables else 0.0


def _scan_stores_for(s, values: set[str], customer_forms: dict[str, str]) -> None:
    """No byte of a seeded value in any file of the lake's object store (data, metadata, manifests), the
    PostgreSQL data directory or the job's checkpoints, and none of the erased customer's ``customer_forms`` in
    the object store, every Avro and Parquet file read decoded. (Kafka keeps its input until the topics'
    retention: tests/stack/test_security.py shows the broker removing it. The customer id stays in the job's
    state, so in its checkpoints, and in PostgreSQL's dead rows and WAL until vacuum and recycling: docs/SECURITY.md.)"""
    from stack.flink_conf import checkpoint_dir
    stores = {"object store": _object_store(s), "postgresql": s.state_dir / "postgres",
              "checkpoints": Path(checkpoint_dir(s).removeprefix("file://"))}
    needles = {v: v for v in values}
    found, sizes = {}, {}
    for name, root in stores.items():
        files = files_under(root)
        assert files, f"nothing under {root}: the scan of the {name} would prove nothing"
        sizes[name] = (len(files), file_sizes(files) / 1e6)
        lake = name == "object store"
        found[name] = files_containing(root, {**needles, **customer_forms} if lake else needles, decode=lake)
    print("byte scan for the seeded PII and the erased customer's identifiers:",
          {n: f"{c} files, {mb:.0f} MB, {len(found[n])} holding one" for n, (c, mb) in sizes.items()})
    outside = {name: len(files_containing(stores[name], {"customer_id": customer_forms["customer_id"]}))
               for name in ("postgresql", "checkpoints")}
    print("files still holding the erased customer's id outside the lake (not erased there):", outside)
    for line in _whose(s, found["object store"]):
        print(line)
    assert not any(found.values()), found


def _whose(s: Settings, paths: dict[str, Any]) -> list[str]:
    """For each lake file a scan found: its age, what it holds, and whether the table's current snapshot, an older
    snapshot or nothing (an orphan) references it, so a failure explains itself."""
    from loanrisk.lake import catalog
    from prefect_flows.lake_upkeep import referenced_files
    out, cat = [], catalog(s)
    for path, forms in sorted(paths.items()):
        rel = path.split("/warehouse/", 1)[-1]  # lake/<namespace>/<table>/...
        parts = rel.split("/")
        try:
            table = cat.load_table(f"{parts[1]}.{parts[2]}")
            current = {f.removeprefix("s3://warehouse/") for f in
                       table.inspect.files().column("file_path").to_pylist()} if table.current_snapshot() else set()
            anywhere = {f.removeprefix("s3://warehouse/") for f in referenced_files(table)}
            whose = ("live in the current snapshot" if rel in current else
                     "referenced by an older snapshot" if rel in anywhere else "referenced by nothing (an orphan)")
        except Exception as exc:  # noqa: BLE001 - a diagnosis, never the failure itself
            whose = f"not looked up: {exc!r}"[:200]
        age = time.time() - Path(path).stat().st_mtime if Path(path).exists() else float("nan")
        out.append(f"  {rel}: {whose}; written {age:.0f} s ago; holds {forms}")
    return out


class _Phases:
    """Seconds spent in each phase of a long test, printed with its figures (a slow phase shows where)."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name], self._last = now - self._last, now

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.0f}s" for k, v in self.laps.items())


def _sync_warehouse(s) -> None:
    """Load the lake into Snowflake with the warehouse loader, so Snowflake is searched with data in it."""
    try:
        from warehouse.loader import sync
    except ImportError as exc:
        print(f"no warehouse loader ({exc}): Snowflake holds nothing of this test")
        return
    try:
        report = sync(s)
    except Exception as exc:  # noqa: BLE001 - the loader is another component: report, search what is there
        print(f"warehouse sync failed ({type(exc).__name__}: {exc}); Snowflake searched as it is")
        return
    print("warehouse sync:", getattr(report, "summary", lambda: report)())


def _lake_text(s, only: tuple[str, ...] | None = None) -> dict[str, pd.DataFrame]:
    """Every text column (or those of ``only``) of every lake table. Read once before the erasure for both the search
    and the row counts: a full read of the lake costs requests per data file, and the suite leaves thousands."""
    from pyiceberg.types import StringType

    from loanrisk.lake import catalog
    cat = catalog(s)
    out = {}
    for ident in cat.list_tables(s.catalog.namespace):
        table = cat.load_table(ident)
        texts = tuple(f.name for f in table.schema().fields
                      if isinstance(f.field_type, StringType) and (only is None or f.name in only))
        out[ident[-1]] = table.scan(selected_fields=texts).to_pandas() if texts else pd.DataFrame()
    return out


def _rows_of(s, customers: list[str], lake_text: dict[str, pd.DataFrame]) -> dict[str, dict[str, int]]:
    """Per customer: rows naming them per lake table (dead-letter payloads included), serving and Snowflake table.

    One pass for all ``customers``; the lake's rows are those of ``lake_text`` (its customer_id or payload column).
    """
    out: dict[str, dict[str, int]] = {c: {} for c in customers}
    for name, frame in lake_text.items():
        column = "customer_id" if "customer_id" in frame else "payload" if "payload" in frame else None
        if column is None:
            continue
        values = frame[column]
        for c in customers:
            hits = values == c if column == "customer_id" else values.str.contains(c, regex=False)
            out[c][f"lake.{name}"] = int(hits.sum())
    for (table,) in serving(s, "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                               "AND column_name = 'customer_id'"):
        counts = dict(serving(s, f'SELECT customer_id, count(*) FROM "{table}" WHERE customer_id = ANY(%s) '
                                 "GROUP BY customer_id", (customers,)))
        for c in customers:
            out[c][f"postgres.{table}"] = int(counts.get(c, 0))
    try:
        from warehouse.connection import connect
        conn = connect(s)
    except Exception as exc:  # noqa: BLE001
        print(f"Snowflake not counted: {type(exc).__name__}: {exc}")
        return out
    try:
        cur = conn.cursor()
        cur.execute("SELECT table_name FROM information_schema.columns WHERE UPPER(table_schema) = %s "
                    "AND UPPER(column_name) = 'CUSTOMER_ID'", (s.snowflake.schema_name.upper(),))
        for (table,) in cur.fetchall():
            for c in customers:
                cur.execute(f'SELECT count(*) FROM {s.snowflake.database}.{s.snowflake.schema_name}."{table}" '
                            "WHERE CUSTOMER_ID = %s", (c,))
                out[c][f"snowflake.{table}"] = int(cur.fetchone()[0])
    finally:
        conn.close()
    return out


def _find_anywhere(s, values: set[str], lake_text: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    """Which of ``values`` appear in any text column of the lake (``lake_text``), the serving database or Snowflake."""
    found: dict[str, list[str]] = {}
    for name, df in lake_text.items():
        text = "\n".join(df[c].astype(str).str.cat(sep="\n") for c in df.columns)
        hits = sorted(v for v in values if v in text)
        if hits:
            found[f"lake.{name}"] = hits
    for (table,) in serving(s, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"):
        text = "\n".join(str(r) for r in serving(s, f'SELECT * FROM "{table}"'))
        hits = sorted(v for v in values if v in text)
        if hits:
            found[f"postgres.{table}"] = hits
    found.update(_find_in_snowflake(s, values))
    return found


def _find_in_snowflake(s, values: set[str]) -> dict[str, list[str]]:
    """The same search over every table of the Snowflake schema (none before the warehouse loader runs)."""
    try:
        from warehouse.connection import connect
        conn = connect(s)
    except Exception as exc:  # noqa: BLE001
        print(f"Snowflake not searched: {type(exc).__name__}: {exc}")
        return {}
    found: dict[str, list[str]] = {}
    try:
        cur = conn.cursor()
        cur.execute("SELECT table_name FROM information_schema.tables WHERE UPPER(table_schema) = %s",
                    (s.snowflake.schema_name.upper(),))
        tables = [r[0] for r in cur.fetchall()]
        print(f"Snowflake tables searched: {tables or 'none (the loader has not run)'}")
        for table in tables:
            cur.execute(f'SELECT * FROM {s.snowflake.database}.{s.snowflake.schema_name}."{table}"')
            text = "\n".join(str(r) for r in cur.fetchall())
            hits = sorted(v for v in values if v in text)
            if hits:
                found[f"snowflake.{table}"] = hits
    finally:
        conn.close()
    return found


# -- full tier: the fault matrix ------------------------------------------------------------------
def _pause(seconds: float) -> Callable[[], None]:
    return lambda: time.sleep(seconds)


def _service(s, name: str):
    from stack.services import all_services
    return next(svc for svc in all_services(s) if svc.name == name)


def _stop_for(s, name: str, seconds: float) -> None:
    """Stop a stack service, wait, start it again (what an outage of that service looks like)."""
    svc = _service(s, name)
    assert svc.stop(), f"{name} did not stop"
    time.sleep(seconds)
    svc.start(timeout_s=180)


def _freeze_for(s, name: str, seconds: float) -> None:
    """SIGSTOP a service for ``seconds``, then SIGCONT: it hangs instead of refusing connections."""
    import os
    import signal
    pid = _service(s, name).pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def _savepoint_and_resume(risk_run: RiskRun, changed: Settings | None = None) -> Settings:
    """Stop the job with a savepoint and submit the same SQL again from it with ``changed`` settings (by default a
    configuration change: a new checkpoint interval); the fixture then follows the new job id. Returns the
    settings the job resumed with."""
    from jobs.submit import submit_risk_job
    from stack.flink_client import stop_with_savepoint
    path = stop_with_savepoint(risk_run.settings, risk_run.job_id, timeout_s=300)
    changed = changed or risk_run.settings.model_copy(update={"flink": risk_run.settings.flink.model_copy(
        update={"checkpoint_interval_ms": 6000})})
    risk_run.job_id = submit_risk_job(changed, savepoint=path)
    print(f"stopped with savepoint {path}; resumed as job {risk_run.job_id}")
    return changed


FAULTS: dict[str, Callable[[RiskRun], None]] = {
    "taskmanager kill -9 (1 of 3)": lambda r: kill_taskmanager(r.settings) and None,
    "taskmanager kill -9 (2 of 3)": lambda r: kill_taskmanager(r.settings) and None,
    "taskmanager kill -9 (3 of 3)": lambda r: kill_taskmanager(r.settings) and None,
    "kafka broker restart": lambda r: _stop_for(r.settings, "kafka", 5),
    "postgresql stopped 30 s": lambda r: _stop_for(r.settings, "postgres", 30),
    "s3 endpoint stopped 30 s": lambda r: _stop_for(r.settings, "s3", 30),
    "s3 endpoint paused 30 s (SIGSTOP)": lambda r: _freeze_for(r.settings, "s3", 30),
    "stop with savepoint and resume": _savepoint_and_resume,
}


@pytest.mark.full
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_matrix_every_sink_exactly_once_and_the_job_runs_again(risk_run: RiskRun, fault: str) -> None:
    s = risk_run.settings
    n = list(FAULTS).index(fault)
    # Each fault's stream starts half a year after the previous one's, always in the past: a stream
    # starting in 2027 (as "2020 + n" gave the 8th fault) is dead-lettered as future_event_time.
    events = valid_stream(seed=8000 + n, customers=20, start=f"{2020 + n // 2}-{1 + 6 * (n % 2):02d}-01T00:00:00Z")
    before = exactly_once_report(s, [])
    job_before, restarts_before = risk_run.job_id, restarts(s, risk_run.job_id)
    sent: list = []
    sender = threading.Thread(target=lambda: sent.append(send_tracked(s, outgoing(events),
                                                                       pace_per_s=len(events) / 60)))
    sender.start()
    time.sleep(10)
    started, started_ms = time.monotonic(), time.time() * 1000
    FAULTS[fault](risk_run)
    healed_s = time.monotonic() - started
    job = risk_run.job_id
    if fault.startswith("taskmanager kill"):  # the JobManager notices a lost TaskManager after a while
        healed_s += wait_until(lambda: restarted_since(s, job, started_ms), 180, "the job to fail over", every_s=1)
    running_s = wait_until(lambda: all_tasks_running(s, job), 600, "every task RUNNING again", s, job, 1)
    sender.join(600)
    assert sent, "the producer did not finish"
    landed_s = wait_all_landed(s, job, events, 900, "every event sent during the fault landed")
    two_more_checkpoints(s, job)
    after = exactly_once_report(s, events)
    print(f"\nfault '{fault}': injected and healed (or failed over) in {healed_s:.0f}s; "
          f"tasks RUNNING {running_s:.0f}s later; "
          f"all {len(events)} events landed {landed_s:.0f}s after that; job {job_before[:8]} -> {job[:8]}, "
          f"restarts {restarts_before} -> {restarts(s, job)}")
    print("exactly-once report:", after)
    assert_exactly_once(before, after, fault)
    assert all_tasks_running(s, job)

