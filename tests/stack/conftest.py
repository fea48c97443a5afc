"""Shared stack fixtures: one run of the risk job over a generated stream, reused by every stack module."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Producer

from ingestion.anomalies import AnomalyConfig
from ingestion.feature_reference import events_frame
from ingestion.generator import GeneratorConfig, generate
from ingestion.wire import ProducedEvent
from loanrisk.settings import Settings

# The full tier's cluster module first, its stack alone on the machine (the session's starts after it); modules
# that need a quiet cluster run before the long-running risk job is submitted; then the risk job's module and
# the shadow challengers' (which withdraws its challengers), the compressed life's start (its months then run
# beside every later module), the modules that read the job's output, the fault and hostile-input modules, and
# the life's checks.
MODULE_ORDER = ("test_cluster", "test_foundation", "test_produce_roundtrip", "test_risk_job", "test_shadow",
                "start:test_compressed_life",
                "test_warehouse", "test_flows", "test_reliability", "test_outages", "test_security",
                "test_scoring_api", "test_compressed_life")
# Modules that disturb the running job (bursts of malformed events) run after every other module, then the
# one that cancels it.
MODULE_LAST = ("test_dashboards", "test_alerting")
LIFE_START = "test_live_time_starts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Foundation and round-trip first, then the risk job's module, then modules that read its output."""
    def rank(item: pytest.Item) -> int:
        name = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if name in MODULE_LAST:
            return len(MODULE_ORDER) + 1 + MODULE_LAST.index(name)
        if item.name.startswith(LIFE_START):
            name = f"start:{name}"
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)
    stack_items = sorted((i for i in items if "tests/stack/" in str(i.path)), key=rank)
    others = [i for i in items if "tests/stack/" not in str(i.path)]
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items[:] = stack_items + others  # the stack group first, so its worker starts it at once
    else:
        items[:] = others + stack_items


WINDOW_MINUTES = 1440
# The session's job lives in compressed time: LIVE_DAY_S seconds of processing time stand for a day, so
# behaviour history and loan outcomes are kept for their meaning's span scaled down (three behaviour
# windows; a loan's life and label horizon), while a month of the compressed life (LIVE_MONTH_S) lasts
# longer than the de-duplication window (DEDUP_RETENTION_S). Deduplication is not scaled: the suite's
# bursts re-send copies seconds apart, and must still be de-duplicated.
LIVE_DAY_S = 3
LIVE_MONTH_S = 30 * LIVE_DAY_S
# The watermark delay compressed the same way: live, 300 s of delay absorb 300 s of skew between producers
# and partitions; compressed, 300 s of event time pass in a hundredth of a wall second, less than two
# partitions' consumers drift apart. One wall second of skew is a third of a compressed day.
WATERMARK_DELAY_S = 86_400 // LIVE_DAY_S
DEDUP_RETENTION_S = 75
ANOMALIES = AnomalyConfig(event_time_skew_s=2.0, out_of_order=0.02, max_disorder_s=120.0, late=0.003,
                          duplicates=0.01, malformed=0.01)


@dataclass
class RiskRun:
    """What the test produced and what the job wrote."""

    settings: Settings
    messages: list[ProducedEvent]
    job_id: str

    def valid(self, kind: str) -> pd.DataFrame:
        """Unique valid events of one contract, as the generator made them."""
        seen: dict[str, dict] = {}
        for m in self.messages:
            if m.kind == kind and not m.anomaly.startswith("malformed"):
                seen.setdefault(m.event_id, json.loads(m.value_bytes))
        return events_frame(seen.values())

    def lake(self, table: str) -> pd.DataFrame:
        """An Iceberg table of the job, read with pyiceberg."""
        from loanrisk.lake import catalog
        return catalog(self.settings).load_table(f"{self.settings.catalog.namespace}.{table}").scan().to_pandas()


def publish_champion(settings: Settings, seed: int, family: str) -> str:
    """Train a small model on generated loans, register it on the stack's S3 registry, make it champion."""
    from models.registry import Registry
    from models.synthetic import train_on_generated
    result = train_on_generated(customers=1500, seed=seed, families=[family], budget=2)
    registry = Registry.from_settings(settings.model.registry(settings.s3))
    version = result["candidate"].register(registry)
    registry.promote(version, force=True)
    return version


def offline_probabilities(settings: Settings, version: str, rows: pd.DataFrame) -> np.ndarray:
    """The registered ONNX model run offline (onnxruntime in this process) on the scored feature rows."""
    import onnxruntime as ort

    from models.registry import Registry
    model_bytes, meta = Registry.from_settings(settings.model.registry(settings.s3)).load(version)
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    x = rows[meta["feature_names"]].to_numpy(np.float32)
    return sess.run(None, {sess.get_inputs()[0].name: x})[1][:, 1].astype(float)


@pytest.fixture(scope="session")
def risk_run(stack_settings: Settings) -> Iterator[RiskRun]:
    """Produce a generated stream with anomalies, run the job until every event has landed."""
    from jobs.submit import submit_risk_job
    from loanrisk.lake import committed_rows
    from loanrisk.settings import LOAN_RETENTION_DAYS, override
    from stack.flink_client import cancel, job_exceptions, job_state
    settings = override(stack_settings, flink={
        "window_minutes": WINDOW_MINUTES, "checkpoint_interval_ms": 5000, "watermark_delay_s": WATERMARK_DELAY_S,
        "dedup_retention_s": DEDUP_RETENTION_S, "loan_retention_s": LOAN_RETENTION_DAYS * LIVE_DAY_S,
        "behaviour_retention_s": 3 * stack_settings.flink.behaviour_window_days * LIVE_DAY_S},
        model={"poll_interval_s": 2.0})
    if settings.flink.scorer == "onnx":
        publish_champion(settings, seed=3, family="logistic_regression")
    messages = list(generate(GeneratorConfig(seed=20261126, customers=120, anomalies=ANOMALIES)))
    job_id = submit_risk_job(settings)
    producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True,
                         "linger.ms": 20})
    for m in messages:
        producer.produce(m.topic, key=m.key, value=m.value_bytes)
    assert producer.flush(60) == 0
    run = RiskRun(settings, messages, job_id)
    want = {"raw_loan_applications": len(run.valid("loan_application")),
            "raw_transactions": len(run.valid("transaction")),
            "raw_repayments": len(run.valid("repayment")),
            "dead_letters": sum(m.anomaly.startswith("malformed") for m in messages)}
    deadline = time.monotonic() + 420
    got: dict[str, int] = {}
    while time.monotonic() < deadline:
        got = committed_rows(settings, (*want, "scores"))
        if all(got.get(k, 0) >= v for k, v in want.items()):
            break
        # A failover (RESTARTING) is allowed: recovery from the checkpoint is part of what is tested.
        assert job_state(settings, job_id) not in {"FAILED", "CANCELED", "FINISHED"}, \
            job_exceptions(settings, job_id)
        time.sleep(2)
    print(f"risk job: wanted {want}, lake has {got}")
    from tests.stack.reliability_helpers import two_more_checkpoints
    two_more_checkpoints(settings, job_id)  # so the windows and scores that followed are committed too
    try:
        yield run
    finally:
        if job_state(settings, run.job_id) not in {"FAILED", "CANCELED", "FINISHED"}:
            cancel(settings, run.job_id)  # the job the run follows now (a test may have resumed it as a new job)


def new_applications_score_with(run: RiskRun, version: str, seed: int, customers: int, timeout_s: float) -> int:
    """Send new applications; each is scored once by ``version``, equal to it run offline. Returns the count."""
    s = run.settings
    time.sleep(3 * s.model.poll_interval_s + 2)  # the UDF polls the champion pointer
    more = [m for m in generate(GeneratorConfig(seed=seed, customers=customers, history_months=0))
            if m.kind == "loan_application"]
    producer = Producer({**s.kafka.client_config(), "enable.idempotence": True})
    for m in more:
        producer.produce(m.topic, key=m.key, value=m.value_bytes)
    assert producer.flush(30) == 0
    new_ids = {json.loads(m.value_bytes)["application_id"] for m in more}
    deadline = time.monotonic() + timeout_s
    rows = pd.DataFrame()
    while time.monotonic() < deadline:
        scores = run.lake("scores")
        rows = scores[scores["loan_id"].isin(new_ids) & (scores["trigger_kind"] == "application")]
        if len(rows) == len(new_ids):
            break
        time.sleep(5)
    assert len(rows) == len(new_ids), "not every new application was scored"
    assert set(rows["model_version"]) == {version}
    np.testing.assert_allclose(rows["probability"].to_numpy(float), offline_probabilities(s, version, rows),
                               atol=1e-6)
    return len(rows)
