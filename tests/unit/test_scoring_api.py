"""The scoring API scores as the stream does: the contract's rules, the SQL's feature formulas and point-in-time
behaviour window, the stream's scorer on the registry's champion; batches answer each application on its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from contracts.events import LOAN_APPLICATION
from contracts.features import APPLICATION_FEATURE_NAMES, FEATURE_NAMES
from contracts.validate import event_violations, validate_event
from ingestion.feature_reference import application_features as reference_application_features
from ingestion.timeutil import MS_PER_DAY, iso_ms
from models.dataset import application_features as training_application_features
from scoring_api.schemas import BatchReply, ScoreReply
from tests.scoring_api_support import (
    NOW, WINDOW_MS, Api, TrainedModel, behaviour_window_values, generated_applications, running_api, train_model,
)
from udfs.scorer import Scorer


@pytest.fixture(scope="module")
def applications() -> list[dict[str, Any]]:
    return generated_applications(customers=40, seed=11)


@pytest.fixture(scope="module")
def model(applications: list[dict[str, Any]]) -> TrainedModel:
    return train_model(3, applications)


@pytest.fixture
def api(tmp_path: Path, model: TrainedModel) -> Iterator[Api]:
    with running_api(tmp_path, model) as running:
        yield running


def slots(app: dict[str, Any]) -> tuple[int, int]:
    """The SQL's closed_slot and previous_slot of an application, computed here from its ISO event time."""
    ms = int(pd.Timestamp(app["event_time"]).value // 1_000_000)
    closed = ms // WINDOW_MS * WINDOW_MS
    return closed, closed - WINDOW_MS


def seed_windows(api: Api, applications: list[dict[str, Any]]) -> dict[str, tuple[dict[str, float] | None, ...]]:
    """Per application: the closed window only, the previous only, both, or neither; plus windows the lookup must
    not use (the next one, and the one before the previous). Returns (closed row, previous row) per application."""
    rng = np.random.default_rng(5)
    chosen: dict[str, tuple[dict[str, float] | None, ...]] = {}
    for i, app in enumerate(applications):
        closed, previous = slots(app)
        customer = app["customer_id"]

        def row(as_of: int, customer: str = customer) -> dict[str, float]:
            return api.store.add_window(customer, as_of, **behaviour_window_values(rng))

        api.store.add_window(customer, closed + WINDOW_MS, income_stability=0.99, dpd_max=999)  # after the event
        api.store.add_window(customer, previous - WINDOW_MS, income_stability=0.11, dpd_max=888)  # too old
        kind = i % 4
        chosen[app["application_id"]] = (row(closed) if kind in (0, 2) else None,
                                         row(previous) if kind in (1, 2) else None)
    return chosen


def sql_behaviour(closed: dict[str, float] | None, previous: dict[str, float] | None,
                  monthly_income: float) -> dict[str, float]:
    """sql/risk/70_scoring_input.sql's behaviour columns, restated: COALESCE(b0.c, b1.c, 0.0), and spend and balance
    COALESCE(COALESCE(b0.c, b1.c) / NULLIF(monthly_income_minor, 0), 0.0)."""
    def c(name: str) -> float | None:
        for w in (closed, previous):
            if w is not None:
                return w[name]
        return None

    def coalesce0(v: float | None) -> float:
        return 0.0 if v is None else v

    debit, balance = c("debit_minor_last"), c("balance_mean_minor_last")
    return {"income_stability": coalesce0(c("income_stability")),
            "spend_to_income": 0.0 if debit is None or monthly_income == 0 else debit / monthly_income,
            "balance_to_income": 0.0 if balance is None or monthly_income == 0 else balance / monthly_income,
            **{n: coalesce0(c(n)) for n in ("dpd_current", "dpd_max", "dpd_mean", "late_payments", "missed_payments",
                                            "behaviour_windows")}}


def expected_features(applications: list[dict[str, Any]], chosen: dict[str, Any]) -> pd.DataFrame:
    """Application features from the pandas reference, behaviour features by the SQL restated above."""
    apps = pd.DataFrame(applications)
    frame = reference_application_features(apps)
    behaviour = pd.DataFrame([sql_behaviour(*chosen[a["application_id"]], a["annual_income_minor"] / 12.0)
                              for a in applications], index=frame.index)
    return pd.concat([frame, behaviour], axis=1)[FEATURE_NAMES]


def score_all(api: Api, applications: list[dict[str, Any]]) -> list[ScoreReply]:
    replies = []
    for app in applications:
        response = api.score(app)
        assert response.status_code == 200, response.text
        replies.append(ScoreReply.model_validate(response.json()))
    return replies


# --- parity with the stream -------------------------------------------------------------------------------------

def test_features_are_the_stream_formulas_with_the_point_in_time_window(api: Api, applications: list[dict]) -> None:
    chosen = seed_windows(api, applications)
    replies = score_all(api, applications)
    got = pd.DataFrame([r.features for r in replies], index=[r.application_id for r in replies]).astype(float)
    assert list(got.columns) == FEATURE_NAMES  # an attribute the application lacks is null (NaN here)
    want = expected_features(applications, chosen)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-15, atol=0)
    # The training side's vectorised copy of the application formulas agrees too.
    training = training_application_features(pd.DataFrame(applications))
    np.testing.assert_allclose(got[APPLICATION_FEATURE_NAMES].to_numpy(), training.to_numpy(), rtol=1e-12)


def test_the_reply_names_the_window_used(api: Api, applications: list[dict]) -> None:
    chosen = seed_windows(api, applications)
    for app, reply in zip(applications, score_all(api, applications)):
        closed_row, previous_row = chosen[app["application_id"]]
        closed, previous = slots(app)
        if closed_row is not None:
            assert (reply.behaviour, reply.behaviour_as_of) == ("closed_window", iso_ms(closed))
        elif previous_row is not None:
            assert (reply.behaviour, reply.behaviour_as_of) == ("previous_window", iso_ms(previous))
        else:
            assert (reply.behaviour, reply.behaviour_as_of) == ("no_window", None)
            assert all(reply.features[n] == 0.0 for n in FEATURE_NAMES[len(APPLICATION_FEATURE_NAMES):])


def test_an_event_exactly_at_a_window_end_uses_the_window_ending_then(api: Api, applications: list[dict]) -> None:
    app = dict(applications[0], event_time=iso_ms(18_000 * MS_PER_DAY))  # 2019-04-14: 600 windows of 30 days
    api.store.add_window(app["customer_id"], 18_000 * MS_PER_DAY, dpd_max=7)
    reply = ScoreReply.model_validate(api.score(app).json())
    assert (reply.behaviour, reply.features["dpd_max"]) == ("closed_window", 7.0)
    app = dict(app, event_time=iso_ms(18_000 * MS_PER_DAY - 1))  # a millisecond earlier: that window is still open
    reply = ScoreReply.model_validate(api.score(app).json())
    assert reply.behaviour == "no_window"


def test_probability_and_reason_codes_are_the_stream_scorers(api: Api, applications: list[dict],
                                                             model: TrainedModel) -> None:
    chosen = seed_windows(api, applications)
    replies = score_all(api, applications)
    features = expected_features(applications, chosen)
    stream = Scorer(str(api.registry.root), FEATURE_NAMES, alert_threshold=api.settings.model.alert_threshold)
    got = np.array([r.probability for r in replies])
    # Row by row, as the API scored them: the stream's scorer gives the very same numbers and reasons.
    one_by_one = pd.concat([stream.score(features.iloc[[i]]) for i in range(len(features))], ignore_index=True)
    np.testing.assert_array_equal(got, one_by_one["probability"].to_numpy())
    assert [",".join(r.reason_codes) for r in replies] == one_by_one["reason_codes"].tolist()
    # In one batch, as the stream's bundles hold them: onnxruntime's float32 sums may differ in the last bit.
    batched = stream.score(features)
    np.testing.assert_allclose(got, batched["probability"].to_numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(got, model.proba(features.to_numpy()), rtol=0, atol=1e-6)
    assert any(r.reason_codes for r in replies) and not all(r.reason_codes for r in replies)
    assert {r.model_version for r in replies} == {api.model.version}


def test_decision_bands_follow_the_configured_thresholds(api: Api, applications: list[dict]) -> None:
    replies = score_all(api, applications)
    bands = api.settings.api
    for r in replies:
        want = ("approve" if r.probability < bands.approve_below
                else "refer" if r.probability < bands.decline_at else "decline")
        assert r.decision == want
    assert len({r.decision for r in replies}) >= 2


def test_the_reply_carries_the_event_id_and_is_published_only_when_asked(api: Api, applications: list[dict]) -> None:
    app = applications[1]
    reply = ScoreReply.model_validate(api.score(app).json())
    assert (reply.event_id, reply.application_id, reply.published) == (app["event_id"], app["application_id"], False)
    assert api.publisher.sent == []
    reply = ScoreReply.model_validate(api.score(app, params={"publish": "true"}).json())
    assert reply.published
    [(topic, key, value)] = api.publisher.sent
    assert (topic, key) == (api.settings.kafka.topics.applications, app["customer_id"])
    assert json.loads(value) == app  # the same event, so the same event_id: the stream keeps one of the two
    assert validate_event(value, LOAN_APPLICATION, now=NOW) is None


def test_the_publish_setting_is_the_default_and_a_failed_publish_is_no_answer(tmp_path: Path, model: TrainedModel,
                                                                             applications: list[dict]) -> None:
    with running_api(tmp_path, model, publish_default=True) as api:
        assert api.score(applications[2]).json()["published"] is True
        assert api.score(applications[2], params={"publish": "false"}).json()["published"] is False
        assert len(api.publisher.sent) == 1
        api.publisher.failing = True
        response = api.score(applications[2])
        assert response.status_code == 503 and response.json()["error"] == "publish_failed"


# --- the contract's rules --------------------------------------------------------------------------------------

def broken(app: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``app`` with fields replaced; ... removes a field."""
    out = dict(app)
    for name, value in changes.items():
        if value is ...:
            out.pop(name)
        else:
            out[name] = value
    return out


@pytest.mark.parametrize("change, rule", [
    ({"amount_minor": "1200"}, "type:amount_minor"),
    ({"amount_minor": 1.5}, "type:amount_minor"),
    ({"term_months": 2**31}, "type:term_months"),
    ({"term_months": 0}, "range:term_months"),
    ({"interest_rate": 120.0}, "range:interest_rate"),
    ({"customer_id": ...}, "missing:customer_id"),
    ({"annual_income_minor": None}, "missing:annual_income_minor"),
    ({"product": "yacht"}, "choice:product"),
    ({"event_time": "2018-01-14 09:30:00"}, "type:event_time"),
    ({"event_time": "2026-06-01T00:10:00Z"}, "future_event_time"),
    ({"event_time": "1999-12-31T23:59:59Z"}, "past_event_time"),
])
def test_each_broken_rule_is_a_422_naming_it(api: Api, applications: list[dict], change: dict, rule: str) -> None:
    response = api.score(broken(applications[0], **change), params={"publish": "true"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_application"
    assert [v["rule"] for v in body["violations"]] == [rule]
    assert rule in body["message"] and body["violations"][0]["message"]
    assert api.publisher.sent == []


@pytest.mark.parametrize("raw", [b'{"event_id": "x",', b"[1, 2]", b'{"amount_minor": NaN}', b"\xff\xfe"])
def test_malformed_json_is_a_422_invalid_json(api: Api, raw: bytes) -> None:
    response = api.score(raw)
    assert response.status_code == 422
    assert [v["rule"] for v in response.json()["violations"]] == ["invalid_json"]


def test_every_broken_rule_is_listed_in_the_order_the_stream_checks_them(api: Api, applications: list[dict]) -> None:
    app = broken(applications[0], region=..., amount_minor="x", product="yacht", term_months=999)
    response = api.score(app)
    assert [v["rule"] for v in response.json()["violations"]] == [
        "missing:region", "type:amount_minor", "choice:product", "range:term_months"]
    assert [v["field"] for v in response.json()["violations"]] == ["region", "amount_minor", "product", "term_months"]


def test_the_first_listed_violation_is_the_streams_dead_letter_reason(applications: list[dict]) -> None:
    cases = [broken(applications[0], **c) for c in (
        {"region": ..., "amount_minor": "x"}, {"product": "yacht", "term_months": 0}, {"term_months": 0},
        {"amount_minor": True, "grade": "Z"}, {"event_time": "2030-01-01T00:00:00Z", "product": "boat"}, {})]
    for case in cases:
        raw = json.dumps(case)
        rules = event_violations(raw, LOAN_APPLICATION, now=NOW)
        assert (rules[0] if rules else None) == validate_event(raw, LOAN_APPLICATION, now=NOW)


# --- batches ---------------------------------------------------------------------------------------------------

def test_a_batch_answers_each_application_on_its_own_with_one_lookup(api: Api, applications: list[dict]) -> None:
    seed_windows(api, applications[:4])
    items: list[Any] = [applications[0], broken(applications[1], term_months=0), "not an application",
                        applications[2], broken(applications[3], customer_id=...)]
    lookups = api.store.lookups
    response = api.batch(items, params={"publish": "true"})
    assert response.status_code == 200
    results = BatchReply.model_validate(response.json()).results
    assert [(r.index, r.status) for r in results] == [(0, 200), (1, 422), (2, 422), (3, 200), (4, 422)]
    assert api.store.lookups == lookups + 1
    assert [v.rule for v in results[1].error.violations] == ["range:term_months"]  # type: ignore[union-attr]
    assert [v.rule for v in results[2].error.violations] == ["invalid_json"]  # type: ignore[union-attr]
    assert [v.rule for v in results[4].error.violations] == ["missing:customer_id"]  # type: ignore[union-attr]
    singles = [ScoreReply.model_validate(api.score(applications[i]).json()) for i in (0, 2)]
    assert [r.score.model_dump(exclude={"published"}) for r in results if r.score] == \
        [s.model_dump(exclude={"published"}) for s in singles]
    assert [e["event_id"] for e in api.publisher.events()] == [applications[0]["event_id"], applications[2]["event_id"]]


def test_a_batch_over_the_limit_is_refused_whole(tmp_path: Path, model: TrainedModel, applications: list[dict]) -> None:
    with running_api(tmp_path, model, max_batch=3) as api:
        response = api.batch(applications[:4])
        assert response.status_code == 413 and response.json()["error"] == "batch_too_large"
        assert api.batch(applications[:3]).status_code == 200
        for body in ({"applications": []}, {"apps": applications[:1]}, [applications[0]]):
            response = api.client.post("/v1/score:batch", json=body, headers=api.headers())
            assert response.status_code == 422 and response.json()["error"] == "invalid_request"
