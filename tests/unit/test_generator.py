"""The synthetic generator: contract-exact events, determinism, pacing, anomalies, a learnable default; the produce loop."""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import threading
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import datetime, timezone

import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from contracts.attributes import APPLICATION_ATTRIBUTES
from contracts.events import INPUT_EVENTS
from contracts.features import FORMULA_FEATURE_NAMES
from contracts.outcomes import outcomes_frame
from contracts.validate import validate_event
from ingestion.anomalies import MALFORMED_VARIANTS, AnomalyConfig
from ingestion.feature_reference import application_features, behaviour_features, events_frame
from ingestion.generator import GeneratorConfig, SyntheticWorld, generate, latent_default_labels, outcome_truth
from ingestion.pacing import TokenBucket
from ingestion.producer import KafkaUnavailable, NullEventProducer, make_producer, produce_events
from ingestion.timeutil import MS_PER_DAY
from loanrisk.settings import KafkaSettings
from riskctl.commands.produce import produce

CONFIG = GeneratorConfig(seed=7, customers=120, spend_txn_per_month=4)
CONTRACTS = {c.name: c for c in INPUT_EVENTS}
EVENT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


class FakeClock:
    """A clock that only moves when slept on, so pacing is measured without wall-clock time."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def messages() -> list:
    return list(generate(CONFIG))


@pytest.fixture(scope="module")
def decoded(messages: list) -> list[dict]:
    return [json.loads(m.value_bytes) for m in messages]


def test_every_event_matches_its_contract_exactly(messages: list, decoded: list[dict]) -> None:
    assert Counter(m.kind for m in messages).keys() == {"loan_application", "transaction", "repayment"}
    for m, event in zip(messages, decoded):
        contract = CONTRACTS[m.kind]
        # The synthetic source holds no application attribute: the optional attributes are left out.
        assert list(event) == [n for n in contract.names if n not in {a.name for a in APPLICATION_ATTRIBUTES}]
        assert validate_event(m.value_bytes, contract, now=NOW) is None
        assert EVENT_TIME.match(event["event_time"])
        assert m.topic == contract.topic and m.key == event["customer_id"] and m.event_id == event["event_id"]
    assert len({m.event_id for m in messages}) == len(messages)


def test_clean_stream_is_in_event_time_order(messages: list) -> None:
    times = [m.event_time_ms for m in messages]
    assert times == sorted(times)


def test_same_seed_same_bytes_other_seed_other_bytes(messages: list) -> None:
    again = [m.value_bytes for m in generate(CONFIG)]
    assert again == [m.value_bytes for m in messages]
    other = [m.value_bytes for m, _ in zip(generate(replace(CONFIG, seed=8)), range(500))]
    assert other != again[:500]


def test_endless_stream_extends_the_finite_one(messages: list) -> None:
    finite_customers = {m.key for m in messages}
    endless = [m for m, _ in zip(generate(replace(CONFIG, customers=None)), range(3000))]
    horizon = endless[-1].event_time_ms
    assert len({m.key for m in endless}) > len({m.key for m in messages[:3000]})  # newcomers join
    same = [m.value_bytes for m in endless if m.key in finite_customers]
    assert same == [m.value_bytes for m in messages if m.event_time_ms <= horizon][:len(same)]
    assert len(same) > 300


def test_secured_products_carry_collateral_and_india_uses_inr(decoded: list[dict]) -> None:
    apps = [e for e in decoded if "application_id" in e]
    products = Counter(a["product"] for a in apps)
    assert set(products) == {"personal", "auto", "home", "business"}
    for a in apps:
        secured = a["product"] in ("auto", "home")
        assert (a["collateral_value_minor"] is not None) == secured
        if secured:
            assert 0.4 < a["amount_minor"] / a["collateral_value_minor"] < 1.3
        assert a["currency"] == ("INR" if a["region"] == "india" else "USD")
    assert set(Counter(a["employment_type"] for a in apps)) == {"salaried", "self_employed", "gig", "retired",
                                                                "unemployed"}


def test_gig_and_self_employed_salaries_are_irregular(decoded: list[dict]) -> None:
    employment = {e["customer_id"]: e["employment_type"] for e in decoded if "application_id" in e}
    monthly: dict[str, Counter] = defaultdict(Counter)
    days: dict[str, set] = defaultdict(set)
    for e in decoded:
        if e.get("kind") == "salary":
            monthly[e["customer_id"]][e["event_time"][:7]] += e["amount_minor"]
            days[e["customer_id"]].add(int(e["event_time"][8:10]))
    cv = defaultdict(list)
    for customer, by_month in monthly.items():
        amounts = list(by_month.values())[1:-1]  # whole months only
        if len(amounts) >= 4:
            cv[employment[customer]].append(statistics.pstdev(amounts) / statistics.mean(amounts))
    salaried = statistics.median(cv["salaried"])
    print("median monthly salary CV: " + ", ".join(f"{k}={statistics.median(v):.3f}" for k, v in cv.items()))
    assert statistics.median(cv["gig"]) > 4 * salaried
    assert statistics.median(cv["self_employed"]) > 4 * salaried
    paydays = statistics.median(len(days[c]) for c, t in employment.items() if t == "salaried" and c in days)
    gig_days = statistics.median(len(days[c]) for c, t in employment.items() if t == "gig" and c in days)
    assert gig_days > 2 * paydays


def test_rate_follows_configuration() -> None:
    for rate in (500.0, 5000.0):
        fake = FakeClock()
        n = 4000
        for _ in zip(generate(replace(CONFIG, rate=rate), clock=fake.clock, sleep=fake.sleep), range(n)):
            pass
        measured = n / fake.now
        print(f"configured {rate:.0f} events/s -> paced at {measured:.1f} events/s (simulated clock)")
        assert measured == pytest.approx(rate, rel=0.01)


def test_speedup_maps_event_time_onto_the_clock() -> None:
    fake = FakeClock()
    speedup = 86_400.0  # one simulated day per second
    seen = [m.event_time_ms for m, _ in zip(generate(replace(CONFIG, speedup=speedup), clock=fake.clock,
                                                     sleep=fake.sleep), range(3000))]
    simulated_days = (seen[-1] - seen[0]) / MS_PER_DAY
    print(f"{simulated_days:.1f} simulated days in {fake.now:.2f} paced seconds")
    assert fake.now == pytest.approx(simulated_days, rel=0.01)


def test_token_bucket_allows_short_bursts_but_holds_the_average() -> None:
    fake = FakeClock()
    bucket = TokenBucket(1000, burst_s=0.1, clock=fake.clock, sleep=fake.sleep)
    for _ in range(100):
        bucket.acquire()
    fake.now += 1.0  # idle for a second: at most 0.1 s of credit may build up
    start = fake.now
    for _ in range(1100):
        bucket.acquire()
    assert fake.now - start == pytest.approx(1.0, abs=0.01)


ANOMALIES = AnomalyConfig(event_time_skew_s=2.0, out_of_order=0.05, max_disorder_s=4 * 3600.0, late=0.01,
                          late_delay_s=24 * 3600.0, duplicates=0.02, malformed=0.03)


@pytest.fixture(scope="module")
def messy() -> list:
    return list(generate(replace(CONFIG, anomalies=ANOMALIES)))


def test_anomaly_shares_follow_configuration(messy: list, messages: list) -> None:
    counts = Counter(m.anomaly.split(":")[0] for m in messy)
    n = len(messages)
    for kind, share in (("out_of_order", 0.05), ("late", 0.01), ("duplicate", 0.02), ("malformed", 0.03)):
        sigma = (n * share * (1 - share)) ** 0.5
        assert abs(counts[kind] - n * share) < 4 * sigma, (kind, counts[kind], n * share)
    valid = [m for m in messy if not m.anomaly.startswith("malformed") and m.anomaly != "duplicate"]
    assert sorted(m.event_id for m in valid) == sorted(m.event_id for m in messages)  # nothing valid lost


def test_malformed_messages_get_the_expected_dead_letter_reason(messy: list) -> None:
    variants = Counter()
    for m in messy:
        reason = validate_event(m.value_bytes, CONTRACTS[m.kind], now=NOW)
        assert reason == m.expected_reason, (m.anomaly, reason)
        if m.anomaly.startswith("malformed:"):
            variants[m.anomaly.split(":")[1]] += 1
    assert set(variants) == set(MALFORMED_VARIANTS)


def test_duplicates_resend_the_same_event(messy: list) -> None:
    first = {}
    for m in messy:
        if m.anomaly == "duplicate":
            assert first[m.event_id] == m.value_bytes
        elif not m.anomaly.startswith("malformed"):
            first[m.event_id] = m.value_bytes


def test_late_and_out_of_order_events_arrive_after_newer_ones(messy: list) -> None:
    # Every on-time message older than a delayed one's release time was sent before it.
    later_min = [0] * len(messy)
    running = float("inf")
    for i in range(len(messy) - 1, -1, -1):
        later_min[i] = running
        if not messy[i].anomaly:
            running = min(running, messy[i].event_time_ms)
    newest = 0
    overtaken = Counter()
    for i, m in enumerate(messy):
        if m.anomaly == "late":
            assert later_min[i] >= m.event_time_ms + ANOMALIES.late_delay_s * 1000
        if m.anomaly in ("late", "out_of_order"):
            assert later_min[i] >= m.event_time_ms
            overtaken[m.anomaly] += newest > m.event_time_ms
        if not m.anomaly:
            newest = max(newest, m.event_time_ms)
    kinds = Counter(m.anomaly for m in messy)
    assert overtaken["late"] > 0.95 * kinds["late"]  # all but those flushed at the very end
    assert overtaken["out_of_order"] > 0.8 * kinds["out_of_order"]


def test_event_time_skew_stays_within_its_bound(messy: list) -> None:
    skews = []
    for m in messy:
        if not m.anomaly.startswith("malformed"):
            reported = datetime.fromisoformat(json.loads(m.value_bytes)["event_time"])
            skews.append(reported.timestamp() * 1000 - m.event_time_ms)
    assert max(abs(s) for s in skews) <= ANOMALIES.event_time_skew_s * 1000
    assert statistics.pstdev(skews) > 500


def test_ground_truth_frames() -> None:
    small = replace(CONFIG, customers=300, spend_txn_per_month=2)
    truth = outcome_truth(small)
    latent = latent_default_labels(small)
    assert list(truth.columns) == ["loan_id", "customer_id", "origination_time", "defaulted",
                                   "first_default_date", "mature"]
    assert truth["defaulted"].dtype == bool and truth["mature"].all()
    assert truth["first_default_date"].notna().sum() == truth["defaulted"].sum()
    merged = truth.merge(latent, on=["loan_id", "customer_id"])
    with_onset = merged["distress_onset"].notna()
    print(f"default rate {truth['defaulted'].mean():.3f}; with distress {merged[with_onset]['defaulted'].mean():.2f},"
          f" without {merged[~with_onset]['defaulted'].mean():.3f}")
    assert merged[with_onset]["defaulted"].mean() > 0.5
    assert merged[~with_onset]["defaulted"].mean() < 0.05
    assert merged.groupby("defaulted")["latent_pd"].mean()[True] > 2 * merged.groupby("defaulted")["latent_pd"].mean()[False]


def _auc(model, X: pd.DataFrame, y: pd.Series) -> float:
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    return roc_auc_score(y, cross_val_predict(model, X, y, cv=cv, method="predict_proba")[:, 1])


def test_default_is_learnable_from_application_features_and_behaviour_adds_to_it() -> None:
    cfg = GeneratorConfig(seed=2024, customers=800, history_months=0, spend_txn_per_month=3)
    events: dict[str, list[dict]] = defaultdict(list)
    for _, kind, event in SyntheticWorld(cfg).events():
        events[kind].append(event)
    apps, tx, rp = (events_frame(events[k]) for k in ("loan_application", "transaction", "repayment"))
    loans = pd.DataFrame({"loan_id": apps["application_id"], "customer_id": apps["customer_id"],
                          "origination_time": pd.to_datetime(apps["event_ms"], unit="ms", utc=True)})
    labels = outcomes_frame(loans, rp.assign(event_time=pd.to_datetime(rp["event_ms"], unit="ms", utc=True)))
    labels = labels.set_index("loan_id")
    x_app = application_features(apps)[FORMULA_FEATURE_NAMES]  # no attribute in generated applications
    y = labels.loc[x_app.index, "defaulted"].astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    auc_app = _auc(model, x_app, y)

    as_of = apps.set_index("customer_id")["event_ms"] + 90 * MS_PER_DAY  # score 3 months after origination
    customer = apps.set_index("application_id")["customer_id"].loc[x_app.index]
    behaviour = behaviour_features(apps, tx, rp, as_of).loc[customer].set_axis(x_app.index)
    first_default_ms = labels.loc[x_app.index, "first_default_date"].astype("int64") // 1_000_000
    alive = (labels.loc[x_app.index, "first_default_date"].isna()
             | (first_default_ms > as_of.loc[customer].to_numpy()))
    auc_app_alive = _auc(model, x_app[alive], y[alive])
    auc_both = _auc(model, pd.concat([x_app, behaviour], axis=1)[alive], y[alive])
    print(f"default rate {y.mean():.3f} over {len(y)} loans; logistic regression ROC AUC (5-fold CV): "
          f"application features {auc_app:.3f}; loans not yet defaulted at 3 months: application {auc_app_alive:.3f}"
          f" -> application + behaviour {auc_both:.3f}")
    assert 0.05 < y.mean() < 0.25
    assert 0.65 <= auc_app <= 0.90
    assert auc_both >= auc_app_alive + 0.03


# -- the produce loop and command, without a broker ---------------------------------------------
def test_oversized_messages_are_refused_and_counted() -> None:
    producer = NullEventProducer(max_message_bytes=1024)
    assert producer.send("t", "c1", b"x" * 1000)
    assert not producer.send("t", "c1", b"x" * 1100)
    assert (producer.stats.enqueued, producer.stats.delivered, producer.stats.refused_too_large) == (1, 1, 1)


def test_produce_loop_stops_at_count_and_on_request(messages: list) -> None:
    producer = NullEventProducer(max_message_bytes=1 << 20)
    summary = produce_events(iter(messages), producer, count=1000)
    assert (summary.handed, summary.delivered, summary.failed, summary.interrupted) == (1000, 1000, 0, False)
    stop = threading.Event()

    def stream():
        for i, m in enumerate(messages):
            if i == 50:
                stop.set()
            yield m

    summary = produce_events(stream(), NullEventProducer(1 << 20), stop=stop)
    assert summary.handed == 50 and summary.interrupted
    assert "sent=50 failed=0" in summary.line()


def test_ctrl_c_stops_the_loop_and_flushes(messages: list) -> None:
    def stream():
        for i, m in enumerate(messages):
            if i == 200:
                os.kill(os.getpid(), signal.SIGINT)
            yield m

    before = signal.getsignal(signal.SIGINT)
    summary = produce_events(stream(), NullEventProducer(1 << 20))
    assert summary.interrupted and summary.handed in (200, 201) and summary.pending == 0
    assert signal.getsignal(signal.SIGINT) is before


def test_unreachable_broker_is_one_clear_error(tmp_path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        producer = make_producer(kafka=KafkaSettings(port=port, generated_secrets_dir=tmp_path),
                                 overrides={"log_level": 0})
        with pytest.raises(KafkaUnavailable, match=f"127.0.0.1:{port}"):
            producer.check_connection(timeout_s=1.0)


@pytest.mark.parametrize("args, message", [
    (["--count", "5", "--duration", "1"], "either --count or --duration"),
    ([], "give --count N or --duration"),
    (["--count", "0"], "--count must be at least 1"),
    (["--count", "5", "--rate", "-3"], "--rate must be >= 0"),
    (["--count", "5", "--speedup", "0"], "--speedup must be > 0"),
    (["--count", "5", "--source", "csv"], "'csv' is not one of"),
])
def test_produce_command_rejects_bad_arguments_in_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(produce, args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert sum(line.startswith("Error:") for line in result.output.splitlines()) == 1


def test_produce_command_dry_run_prints_the_summary() -> None:
    result = CliRunner().invoke(produce, ["--count", "300", "--rate", "0", "--seed", "3", "--dry-run",
                                          "--anomalies"])
    assert result.exit_code == 0, result.output
    summary = result.output.strip().splitlines()[-1]
    assert re.search(r"sent=300 failed=0 refused_too_large=0 rate=[\d,]+ events/s .* seed=3", summary)
