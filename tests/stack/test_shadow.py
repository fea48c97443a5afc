"""Shadow challengers on the running risk job: both scores of every loan in the lake, the champion's alone in
serving and alerts, and the comparison on the lake's rows deciding which challenger is promoted."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Producer

from ingestion.generator import GeneratorConfig, generate
from loanrisk.settings import Settings
from tests.stack.conftest import RiskRun, new_applications_score_with, offline_probabilities

pytestmark = pytest.mark.stack

# A cohort later than the session's stream, long enough for its labels to mature (13 months observed), with
# enough defaults for the paired bootstrap to separate a good model from an uninformative one.
COHORT = GeneratorConfig(seed=2207, customers=600, start="2021-06-01T00:00:00Z", applications_per_day=20.0,
                         history_months=0, spend_txn_per_month=0.5)


@dataclass
class Shadow:
    """The models, the cohort's application ids and the lake's rows for them."""

    settings: Settings
    champion: str  # trained on permuted labels: no skill, its probabilities stay near the default rate
    flipped: str  # trained on flipped labels: ranks defaulters last, nearly every probability above 0.5
    better: str  # trained on the true labels
    loans: set[str]
    scores: pd.DataFrame


def register(settings: Settings, label_of: str, promote: bool = False) -> str:
    """A logistic regression on generated loans with their labels ``true``, ``flipped`` or ``permuted``."""
    from models.pipeline import train_candidate
    from models.registry import Registry
    from models.synthetic import generated_training_set
    ts = generated_training_set(1500, seed=11)
    label = {"true": ts.label, "flipped": 1 - ts.label,
             "permuted": np.random.default_rng(0).permutation(ts.label)}[label_of]
    cand = train_candidate(dataclasses.replace(ts, label=label.astype(np.int8)), ["logistic_regression"], 1,
                           n_repeats=1, hold_out=False)
    registry = Registry.from_settings(settings.model.registry(settings.s3))
    version = cand.register(registry)
    if promote:
        registry.promote(version, force=True)
    return version


def produce_cohort(settings: Settings) -> set[str]:
    """Send the cohort; returns its application ids."""
    producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True, "linger.ms": 20})
    loans = set()
    for m in generate(COHORT):
        producer.produce(m.topic, key=m.key, value=m.value_bytes)
        if m.kind == "loan_application":
            loans.add(json.loads(m.value_bytes)["application_id"])
    assert producer.flush(60) == 0
    return loans


def cohort_scores(settings: Settings, loans: set[str]) -> pd.DataFrame:
    """The lake's score rows of the cohort's loans."""
    from loanrisk.lake import catalog
    scores = catalog(settings).load_table(f"{settings.catalog.namespace}.scores").scan().to_pandas()
    return scores[scores["loan_id"].isin(loans)].reset_index(drop=True)


def matured_pairs(settings: Settings, champion: str) -> dict[str, pd.DataFrame]:
    """The lake's paired rows per challenger, of loans with matured labels."""
    from loanrisk.lake import catalog
    from models.shadow import lake_frames, paired_rows
    return paired_rows(*lake_frames(catalog(settings), settings.catalog.namespace), champion)


@pytest.fixture(scope="module")
def shadow(risk_run: RiskRun) -> Iterator[Shadow]:
    """A no-skill champion with two challengers (flipped labels, true labels), and a cohort scored by all three."""
    if risk_run.settings.flink.scorer != "onnx":
        pytest.skip("the job ran with the built-in scorer")
    from models.registry import Registry
    s = risk_run.settings
    registry = Registry.from_settings(s.model.registry(s.s3))
    champion = register(s, "permuted", promote=True)
    flipped, better = register(s, "flipped"), register(s, "true")
    registry.challenge(flipped)
    registry.challenge(better)
    try:
        time.sleep(3 * s.model.poll_interval_s + 2)  # the UDF polls both pointers
        loans = produce_cohort(s)
        deadline, pairs, scores = time.monotonic() + 600, {}, pd.DataFrame()
        while time.monotonic() < deadline:
            scores = cohort_scores(s, loans)
            pairs = matured_pairs(s, champion)
            if ((scores["trigger_kind"] == "application").sum() >= 3 * len(loans)
                    and all(len(pairs.get(v, ())) >= 0.9 * len(loans) for v in (flipped, better))):
                break
            time.sleep(10)
        print(f"cohort of {len(loans)} loans; paired rows with matured labels: "
              f"{ {v: len(p) for v, p in pairs.items()} }")
        yield Shadow(s, champion, flipped, better, loans, scores)
    finally:
        for entry in registry.challengers():  # later modules expect one score row per trigger
            registry.withdraw(entry["version"])


def test_each_application_is_scored_by_the_champion_and_by_each_challenger_in_the_lake(shadow: Shadow) -> None:
    apps = shadow.scores[shadow.scores["trigger_kind"] == "application"]
    assert set(apps["loan_id"]) == shadow.loans
    by_role = apps.groupby(["role", "model_version"])["loan_id"].agg(["size", "nunique"])
    print(by_role)
    assert set(by_role.index) == {("champion", shadow.champion), ("challenger", shadow.flipped),
                                  ("challenger", shadow.better)}
    assert (by_role["size"] == len(shadow.loans)).all() and (by_role["nunique"] == len(shadow.loans)).all()
    # Each row is its own model's probability of the same feature row, run offline.
    for version in (shadow.champion, shadow.flipped, shadow.better):
        rows = apps[apps["model_version"] == version]
        np.testing.assert_allclose(rows["probability"].to_numpy(float),
                                   offline_probabilities(shadow.settings, version, rows), atol=1e-6)
    challenger = apps[apps["role"] == "challenger"]
    assert challenger["reason_codes"].isna().all()
    np.testing.assert_allclose(challenger["expected_loss_usd"].to_numpy(float),
                               (challenger["probability"] * challenger["exposure_usd"]
                                * shadow.settings.model.lgd).to_numpy(float), rtol=1e-9)


def test_serving_holds_the_champions_score_of_every_loan_only(shadow: Shadow) -> None:
    from loanrisk.serving import serving_connection
    with serving_connection(shadow.settings, reader=True) as conn:
        rows = conn.execute("SELECT loan_id, model_version, probability FROM loan_scores_latest "
                            "WHERE loan_id = ANY(%s)", (sorted(shadow.loans),)).fetchall()
    assert {r[0] for r in rows} == shadow.loans and len(rows) == len(shadow.loans)
    assert {r[1] for r in rows} == {shadow.champion}


def test_alerts_come_from_the_champion_only_although_a_challenger_scored_above_the_threshold(shadow: Shadow) -> None:
    from tests.stack.reliability_helpers import read_topic
    s = shadow.settings
    threshold = s.model.alert_threshold
    alerts = [json.loads(r.value) for r in read_topic(s, s.kafka.topics.alerts) if r.key in shadow.loans]
    scores = shadow.scores
    champion_high = set(scores[(scores["role"] == "champion") & (scores["probability"] >= threshold)]["loan_id"])
    challenger_high = set(scores[(scores["role"] == "challenger") & (scores["probability"] >= threshold)]["loan_id"])
    print(f"{len(alerts)} alerts; loans over the threshold: champion {len(champion_high)}, "
          f"a challenger {len(challenger_high)}")
    assert len(challenger_high - champion_high) > 0.5 * len(shadow.loans), "no challenger scored high: proves nothing"
    assert {a["loan_id"] for a in alerts} == champion_high
    assert {a["model_version"] for a in alerts} <= {shadow.champion}


def test_on_the_lakes_rows_the_flipped_challenger_loses_and_the_better_one_is_promoted(
        shadow: Shadow, tmp_path_factory: pytest.TempPathFactory) -> None:
    from loanrisk.lake import catalog
    from models.registry import Registry
    from models.shadow import PromotionRule, review
    s = shadow.settings
    registry = Registry.from_settings(s.model.registry(s.s3))
    report = tmp_path_factory.mktemp("shadow-report")  # kept after the session's stack is removed
    result = review(PromotionRule.from_settings(s.model), registry, report, promote=True, catalog=catalog(s),
                    namespace=s.catalog.namespace)
    print(f"report: {result['report']}")
    for version, r in result["challengers"].items():
        print(version, r["loans"], r["defaults"], r["champion"], r["challenger_metrics"], r["differences"],
              r["reason"])
    flipped, better = result["challengers"][shadow.flipped], result["challengers"][shadow.better]
    assert flipped["loans"] >= 0.9 * len(shadow.loans) and flipped["defaults"] >= s.model.shadow_min_defaults
    assert not flipped["promote"] and flipped["differences"]["roc_auc"]["ci_high"] < 0
    assert better["promote"], better["reason"]
    assert result["winner"] == result["promoted"] == shadow.better
    pointer = registry.champion()
    assert pointer["version"] == shadow.better and pointer["comparison"]["shadow"]["challenger"] == shadow.better
    assert [e["version"] for e in registry.challengers()] == [shadow.flipped], "the promoted challenger is still one"
    assert (report / f"shadow-{shadow.better}.png").exists()


def test_after_the_promotion_and_withdrawal_new_loans_are_scored_by_the_winner_alone(shadow: Shadow) -> None:
    from models.registry import Registry
    s = shadow.settings
    registry = Registry.from_settings(s.model.registry(s.s3))
    for entry in registry.challengers():
        registry.withdraw(entry["version"])
    # One application row per new loan, the winner's: no challenger row remains.
    new_applications_score_with(RiskRun(s, [], ""), shadow.better, seed=2208, customers=12, timeout_s=180)
