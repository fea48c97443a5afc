"""The risk job end to end on the real stack: generator anomalies on, parallelism 2, several windows."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from confluent_kafka import Producer

from contracts.features import APPLICATION_FEATURE_NAMES, FEATURE_NAMES
from ingestion.feature_reference import application_features, behaviour_features
from ingestion.generator import GeneratorConfig, generate
from ingestion.wire import ProducedEvent
from loanrisk.settings import Settings
from tests.stack.conftest import (
    WINDOW_MINUTES, RiskRun, new_applications_score_with, offline_probabilities, publish_champion,
)
from stack.flink_client import operator_metric
from tests.stack.reliability_helpers import late_drops

pytestmark = pytest.mark.stack


def test_every_valid_event_lands_exactly_once_and_duplicates_are_dropped(risk_run: RiskRun) -> None:
    for kind, table, id_col in (("loan_application", "raw_loan_applications", "application_id"),
                                ("transaction", "raw_transactions", "transaction_id"),
                                ("repayment", "raw_repayments", "repayment_id")):
        expected = risk_run.valid(kind)
        lake = risk_run.lake(table)
        assert lake["event_id"].is_unique, f"{table} holds a duplicate event"
        assert set(lake["event_id"]) == set(expected["event_id"]), table
        assert set(lake[id_col]) == set(expected[id_col])
    dups = sum(m.anomaly == "duplicate" for m in risk_run.messages)
    assert dups > 0, "the generator sent no duplicates: the test would prove nothing"


def test_the_job_runs_one_scorer_and_each_stateful_operator_keeps_its_stated_retention(risk_run: RiskRun) -> None:
    from jobs.state_retention import retention_table
    plan = json.loads((risk_run.settings.state_dir / "run" / "plan-loan-risk.json").read_text())
    scorers = [n["id"] for n in plan["nodes"] if n["type"].startswith("stream-exec-python-calc")]
    assert len(scorers) == 1, f"the planner runs {len(scorers)} scorers (a filter on the score splits the plan)"
    f = risk_run.settings.flink
    want = {"dedup": f.dedup_retention_s, "behaviour": f.behaviour_retention, "loan": f.loan_retention_s}
    rows = retention_table(plan)
    assert {r["retention"] for r in rows} == set(want)
    assert all(r["ttl"] == f"{want[r['retention']] * 1000} ms" for r in rows), rows
    print(f"{len(rows)} stateful operators: " + ", ".join(f"{r['holds']} {r['ttl']}" for r in rows))


def test_every_malformed_event_is_one_dead_letter_with_a_reason(risk_run: RiskRun) -> None:
    malformed = [m for m in risk_run.messages if m.anomaly.startswith("malformed")]
    dlq = risk_run.lake("dead_letters")
    assert len(malformed) > 0
    assert len(dlq) == len(malformed) and dlq["dlq_id"].is_unique
    assert dlq["reason"].notna().all() and (dlq["reason"].str.len() > 0).all()
    print("dead-letter reasons:", dlq["reason"].value_counts().to_dict())


def test_no_raw_pii_reaches_the_lake(risk_run: RiskRun) -> None:
    apps = risk_run.valid("loan_application")
    lake = risk_run.lake("raw_loan_applications")
    names = set(apps["full_name"])
    assert not names & set(lake["full_name"]), "a raw name reached the lake"
    # Each stored name is the keyed pseudonym of the name sent: <key id>:<HMAC-SHA256 under the session's key>.
    import hashlib
    import hmac
    p = risk_run.settings.privacy
    key = (p.key() or "").encode()
    assert key, "the session configures a PII key file (tests/conftest.py)"
    sent = dict(zip(apps["event_id"], apps["full_name"]))
    stored = dict(zip(lake["event_id"], lake["full_name"]))
    assert set(sent) <= set(stored)
    assert all(stored[e] == f"{p.pii_key_id}:{hmac.new(key, n.encode(), hashlib.sha256).hexdigest()}"
               for e, n in sent.items())
    dlq_text = " ".join(risk_run.lake("dead_letters")["payload"])
    assert not [n for n in names if n in dlq_text]


def test_every_application_has_exactly_one_application_score(risk_run: RiskRun) -> None:
    scores = risk_run.lake("scores")
    app_scores = scores[scores["trigger_kind"] == "application"]
    assert app_scores["loan_id"].is_unique
    assert set(app_scores["loan_id"]) == set(risk_run.valid("loan_application")["application_id"])
    assert app_scores["probability"].between(0, 1).all()
    assert (scores["trigger_kind"] == "behaviour_window").any(), "no active loan was re-scored on a window close"


def test_streaming_application_features_equal_the_pandas_reference(risk_run: RiskRun) -> None:
    apps = risk_run.valid("loan_application")
    ref = application_features(apps)
    got = risk_run.lake("scores").query("trigger_kind == 'application'").set_index("loan_id")[APPLICATION_FEATURE_NAMES]
    got = got.loc[ref.index]
    np.testing.assert_allclose(got.to_numpy(float), ref.to_numpy(float), rtol=1e-9, atol=1e-9)


def test_streaming_behaviour_features_equal_the_pandas_reference(risk_run: RiskRun) -> None:
    scores = risk_run.lake("scores")
    rows = scores[scores["behaviour_as_of"].notna()].copy()
    # Events later than the watermark are (correctly) not in Flink's closed windows; the pandas
    # reference cannot know which, so customers with a late event are left out, and counted.
    late_customers = {json.loads(m.value_bytes).get("customer_id") for m in risk_run.messages if m.anomaly == "late"}
    rows = rows[~rows["customer_id"].isin(late_customers)]
    assert len(rows) >= 50, f"only {len(rows)} scored rows to compare"
    apps = risk_run.valid("loan_application")
    txns, reps = risk_run.valid("transaction"), risk_run.valid("repayment")
    behaviour_names = FEATURE_NAMES[len(APPLICATION_FEATURE_NAMES):]
    mismatches = []
    for _, row in rows.iterrows():
        as_of = pd.Series({row["customer_id"]: int(pd.Timestamp(row["behaviour_as_of"]).value // 1_000_000)})
        ref = behaviour_features(apps, txns, reps, as_of)
        for name in behaviour_names:
            if abs(float(ref.loc[row["customer_id"], name]) - float(row[name])) > 1e-6:
                mismatches.append((row["loan_id"], row["trigger_kind"], name, float(row[name]),
                                   float(ref.loc[row["customer_id"], name])))
    # A mismatch with more late drops than the stream had late behaviour events means partitions ran apart
    # (loanrisk/settings.py, source_idle_timeout_s): the drops tell lateness from loss.
    late_sent = sum(m.anomaly == "late" and m.kind in ("transaction", "repayment") for m in risk_run.messages)
    drops = late_drops(risk_run.settings, risk_run.job_id)
    print(f"compared {len(rows)} scored rows x {len(behaviour_names)} behaviour features; "
          f"late behaviour events sent: {late_sent}; late drops by vertex: {drops}")
    assert not mismatches, (f"{len(mismatches)} mismatches, late behaviour events sent {late_sent}, "
                            f"late drops {drops}: {mismatches[:10]}")


def test_window_aggregates_equal_a_pandas_computation_over_the_scored_events(risk_run: RiskRun) -> None:
    scores = risk_run.lake("scores")
    agg = risk_run.lake("risk_by_window")
    threshold = risk_run.settings.model.alert_threshold
    scores["window_start"] = pd.to_datetime(scores["trigger_time"], utc=True).dt.floor(f"{WINDOW_MINUTES}min")
    late_apps = {m.event_id for m in risk_run.messages if m.anomaly == "late" and m.kind == "loan_application"}
    late_loans = set(risk_run.valid("loan_application").set_index("event_id").loc[
        list(late_apps & set(risk_run.valid("loan_application")["event_id"]))]["application_id"]) if late_apps else set()
    key = ["window_start", "product", "region", "grade_band"]
    skip = set(map(tuple, scores[scores["loan_id"].isin(late_loans)][key].drop_duplicates().to_numpy()))
    expected = scores.groupby(key).agg(applications=("trigger_kind", lambda t: int((t == "application").sum())),
                                       scored_loans=("loan_id", "nunique"), mean_probability=("probability", "mean"),
                                       max_probability=("probability", "max"),
                                       high_risk_share=("probability", lambda p: float((p >= threshold).mean())),
                                       expected_loss_usd=("expected_loss_usd", "sum")).reset_index()
    agg["window_start"] = pd.to_datetime(agg["window_start"], utc=True)
    merged = expected.merge(agg, on=key, how="outer", suffixes=("_pd", "_flink"), indicator=True)
    merged = merged[[tuple(r) not in skip for r in merged[key].to_numpy()]]
    # Windows still open when the test stopped have no Flink row yet: compare the closed ones.
    closed = merged[merged["_merge"] != "left_only"]
    assert closed["window_start"].nunique() >= 3, "fewer than three windows of data"
    assert (closed["_merge"] == "both").all(), closed[closed["_merge"] != "both"][key].head()
    # Scores the risk window dropped as late (the metric of its window operator), to tell lateness from loss.
    late = operator_metric(risk_run.settings, risk_run.job_id, "numLateRecordsDropped",
                      vertex_has="GlobalWindowAggregate(groupBy=[product, region, grade_band]")
    print(f"compared {len(closed)} closed window segments; scores dropped as late by the risk window: {late:.0f}")
    for col in ("applications", "scored_loans", "mean_probability", "max_probability", "high_risk_share",
                "expected_loss_usd"):
        np.testing.assert_allclose(closed[f"{col}_flink"].astype(float), closed[f"{col}_pd"].astype(float),
                                   rtol=1e-9, atol=1e-9, err_msg=f"{col} (late scores dropped: {late:.0f})")


def test_latest_score_per_loan_is_upserted_in_postgres(risk_run: RiskRun) -> None:
    from loanrisk.serving import serving_connection
    with serving_connection(risk_run.settings, reader=True) as conn:
        rows = conn.execute("SELECT loan_id, count(*) FROM loan_scores_latest GROUP BY loan_id").fetchall()
    assert {r[0] for r in rows} == set(risk_run.valid("loan_application")["application_id"])
    assert all(r[1] == 1 for r in rows)


def test_streaming_scores_equal_the_onnx_model_run_offline(risk_run: RiskRun) -> None:
    if risk_run.settings.flink.scorer != "onnx":
        pytest.skip("the job ran with the built-in scorer")
    scores = risk_run.lake("scores")
    version = scores["model_version"].mode().iloc[0]
    rows = scores[scores["model_version"] == version]
    np.testing.assert_allclose(rows["probability"].to_numpy(float),
                               offline_probabilities(risk_run.settings, version, rows), atol=1e-6)


def test_promoting_a_new_model_changes_later_scores_without_a_restart(risk_run: RiskRun) -> None:
    if risk_run.settings.flink.scorer != "onnx":
        pytest.skip("the job ran with the built-in scorer")
    from stack.flink_client import job_state
    from tests.stack.reliability_helpers import restarts
    s = risk_run.settings
    before = restarts(s, risk_run.job_id)
    old_version = risk_run.lake("scores")["model_version"].mode().iloc[0]
    new_version = publish_champion(s, seed=5, family="random_forest")
    assert new_version != old_version
    new_applications_score_with(risk_run, new_version, seed=777, customers=25, timeout_s=180)
    assert job_state(s, risk_run.job_id) == "RUNNING"
    assert restarts(s, risk_run.job_id) == before, "the job restarted while the model changed"


ATTRIBUTE = "historical_failures_to_pay"  # a declared application attribute (contracts/attributes.py)


def publish_attribute_champion(settings: Settings) -> tuple[str, list[str]]:
    """A champion trained on generated loans that also carry ATTRIBUTE (defaulters have more failures to pay;
    a tenth of the rows lack it); returns its version and its features."""
    from models.dataset import from_applications
    from models.pipeline import train_candidate
    from models.registry import Registry
    from models.synthetic import generated_applications
    apps = generated_applications(customers=1500, seed=11)
    rng = np.random.default_rng(11)
    failures = np.where(apps["defaulted"] == 1, rng.poisson(3.0, len(apps)), rng.poisson(0.2, len(apps)))
    apps[ATTRIBUTE] = [None if rng.random() < 0.1 else int(v) for v in failures]
    cand = train_candidate(from_applications(apps, "generated with an attribute"), ["logistic_regression"], budget=1,
                           n_repeats=1, hold_out=False, threshold=settings.model.alert_threshold)
    registry = Registry.from_settings(settings.model.registry(settings.s3))
    version = cand.register(registry)
    registry.promote(version, force=True)
    return version, cand.metadata["feature_names"]


def applications_with_the_attribute(seed: int, customers: int) -> tuple[list[ProducedEvent], dict[str, int | None]]:
    """New generated applications, ATTRIBUTE set to 0 or 6 on two of every three and left out of the third."""
    from ingestion.wire import encode_event
    sent, values = [], {}
    apps = [m for m in generate(GeneratorConfig(seed=seed, customers=customers, history_months=0))
            if m.kind == "loan_application"]
    for i, m in enumerate(apps):
        event = json.loads(m.value_bytes)
        value = None if i % 3 == 2 else (0, 6)[i % 3]
        if value is not None:
            event[ATTRIBUTE] = value
        values[event["application_id"]] = value
        sent.append(replace(m, value_bytes=encode_event(event)))
    return sent, values


def test_a_declared_attribute_reaches_the_lake_and_the_streaming_scores_of_a_champion_that_takes_it(
        risk_run: RiskRun) -> None:
    if risk_run.settings.flink.scorer != "onnx":
        pytest.skip("the job ran with the built-in scorer")
    s = risk_run.settings
    version, features = publish_attribute_champion(s)
    assert ATTRIBUTE in features, "the model trained on the attribute does not declare it as an input"
    time.sleep(3 * s.model.poll_interval_s + 2)  # the UDF polls the champion pointer
    sent, values = applications_with_the_attribute(seed=913, customers=24)
    producer = Producer({**s.kafka.client_config(), "enable.idempotence": True})
    for m in sent:
        producer.produce(m.topic, key=m.key, value=m.value_bytes)
    assert producer.flush(30) == 0
    deadline, rows = time.monotonic() + 180, pd.DataFrame()
    while time.monotonic() < deadline:
        scores = risk_run.lake("scores")
        rows = scores[scores["loan_id"].isin(values) & (scores["trigger_kind"] == "application")]
        if len(rows) == len(values):
            break
        time.sleep(5)
    assert len(rows) == len(values), "not every application with the attribute was scored"
    assert set(rows["model_version"]) == {version}
    scored = rows.set_index("loan_id")[ATTRIBUTE]
    for loan, value in values.items():
        assert (pd.isna(scored[loan]) if value is None else scored[loan] == value), (loan, value, scored[loan])
    raw = risk_run.lake("raw_loan_applications").set_index("application_id")[ATTRIBUTE]
    assert all((pd.isna(raw[loan]) if v is None else raw[loan] == v) for loan, v in values.items())
    # The stream scored them as the registered model does offline, its own imputer filling the missing values.
    np.testing.assert_allclose(rows["probability"].to_numpy(float), offline_probabilities(s, version, rows), atol=1e-6)
    by_value = rows.assign(value=rows["loan_id"].map(values)).groupby("value", dropna=False)["probability"].mean()
    print(f"{version} ({len(features)} features) mean probability by {ATTRIBUTE}: {by_value.to_dict()}")
    assert by_value[6] > by_value[0], "the champion's probability does not follow the attribute"


def test_dlq_list_shows_dead_letters_and_redrive_resends_corrected_ones(risk_run: RiskRun) -> None:
    from click.testing import CliRunner

    from ingestion.dead_letters import export_originals, list_dead_letters, redrive
    from riskctl.commands.dlq import dlq
    s = risk_run.settings
    listed = CliRunner().invoke(dlq, ["list", "--summary"])
    assert listed.exit_code == 0, listed.output
    malformed = sum(m.anomaly.startswith("malformed") for m in risk_run.messages)
    assert f"{malformed:>8}  total" in listed.output
    letters = list_dead_letters(s, topic=s.kafka.topics.transactions)
    fixable = letters[letters["reason"].str.match(r"(missing|type|range):amount_minor$")].head(3)
    assert len(fixable) > 0, letters["reason"].value_counts()
    # Refused first: an original that still breaks its contract is never re-sent.
    assert redrive(s, fixable, dry_run=True).sent == []
    # The operator's correction: a valid amount, and a new transaction id for the corrected event.
    corrections = {}
    for record in export_originals(s, fixable):
        event = dict(record["event"])
        event["amount_minor"] = 12_345
        event["transaction_id"] = "redriven-" + event["transaction_id"]
        corrections[record["dlq_id"]] = event
    report = redrive(s, fixable, corrections)
    assert sorted(report.sent) == sorted(fixable["dlq_id"]) and not report.refused
    again = redrive(s, fixable, corrections)  # a repeated redrive: the job drops the repeated event ids
    assert len(again.sent) == len(fixable)
    wanted = {e["event_id"] for e in corrections.values()}
    deadline = time.monotonic() + 120
    landed = pd.DataFrame()
    while time.monotonic() < deadline:
        raw = risk_run.lake("raw_transactions")
        landed = raw[raw["event_id"].isin(wanted)]
        if len(landed) >= len(wanted):
            break
        time.sleep(5)
    from tests.stack.reliability_helpers import two_more_checkpoints
    two_more_checkpoints(risk_run.settings, risk_run.job_id)  # a doubled row would be committed by now
    raw = risk_run.lake("raw_transactions")
    landed = raw[raw["event_id"].isin(wanted)]
    assert sorted(landed["event_id"]) == sorted(wanted), "each corrected event lands exactly once"
    assert (landed["amount_minor"] == 12_345).all()
    assert len(risk_run.lake("dead_letters")) == malformed, "redriving added or lost dead letters"


def test_restore_points_past_their_retention_are_disposed_of_by_flink_but_the_latest_and_the_live_jobs_stay(
        risk_run: RiskRun) -> None:
    """Live time compressed: a retention of two seconds against two savepoints of the running job."""
    from pathlib import Path
    from urllib.parse import urlparse

    from jobs.params import RISK_JOB_NAME
    from loanrisk.settings import override
    from stack.flink_client import all_tasks_running, last_checkpoint_ms, savepoint
    from stack.recovery import prune_restore_points, restore_points
    s, job = risk_run.settings, risk_run.job_id
    first = savepoint(s, job)
    second = savepoint(s, job)
    folders = [Path(urlparse(path).path) for path in (first, second)]
    within = prune_restore_points(override(s, flink={"restore_point_retention_days": 300 / 86_400}), RISK_JOB_NAME)
    assert all(p.completed_at < time.time() - 300 for p in within), "a point within the retention was disposed of"
    assert all((f / "_metadata").is_file() for f in folders), "a savepoint within the retention is gone"
    time.sleep(3)
    before = restore_points(s, RISK_JOB_NAME)
    gone = prune_restore_points(override(s, flink={"restore_point_retention_days": 2 / 86_400}), RISK_JOB_NAME)
    remaining = restore_points(s, RISK_JOB_NAME)
    after = {p.uri for p in remaining}
    print(f"restore points {len(before)} -> {len(after)}: disposed of {len(gone)} "
          f"({sum(p.kind == 'savepoint' for p in gone)} savepoints); the running job's checkpoints and the latest kept")
    # The job checkpoints on: one that completes between the listing above and the pruning becomes the latest,
    # and the savepoint before it may go. Either way a point at least as new as the latest listed stays.
    assert remaining and remaining[-1].completed_at >= before[-1].completed_at, \
        "the latest restore point was disposed of"
    assert not any(p.kind == "checkpoint" and p.job_id == job for p in gone), "a running job's checkpoint is gone"
    for folder in folders:
        if before[-1].uri.endswith("/" + folder.name):
            continue  # the latest restore point is never disposed of
        assert not folder.exists(), f"{folder} is past the retention and still there"
        assert any(p.uri.endswith("/" + folder.name) for p in gone)
    checkpointed = last_checkpoint_ms(s, job)
    deadline = time.time() + 120
    while last_checkpoint_ms(s, job) == checkpointed and time.time() < deadline:
        time.sleep(1)
    assert last_checkpoint_ms(s, job) > checkpointed and all_tasks_running(s, job), \
        "the job stopped checkpointing after the pruning"
