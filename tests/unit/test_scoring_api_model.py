"""The API scores with the registry's champion as the stream does: a promotion is picked up after the poll interval
without a restart, and a champion that does not load leaves the last good model serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contracts.features import FEATURE_NAMES
from models.registry import Registry
from scoring_api.champion import scorer_from_settings
from scoring_api.inputs import scoring_input
from tests.scoring_api_support import (
    WINDOW_MS, Api, TrainedModel, api_settings, break_model_file, generated_applications, promote, running_api,
    train_model,
)


@pytest.fixture(scope="module")
def applications() -> list[dict[str, Any]]:
    return generated_applications(customers=12, seed=31)


@pytest.fixture(scope="module")
def first(applications: list[dict[str, Any]]) -> TrainedModel:
    return train_model(1, applications)


@pytest.fixture(scope="module")
def second(applications: list[dict[str, Any]]) -> TrainedModel:
    return train_model(2, applications)


@pytest.fixture
def api(tmp_path: Path, first: TrainedModel) -> Iterator[Api]:
    with running_api(tmp_path, first) as running:
        yield running


def scored(api: Api, applications: list[dict[str, Any]]) -> tuple[set[str], np.ndarray]:
    """(model versions, probabilities) of the applications scored as one batch."""
    results = api.batch(applications).json()["results"]
    assert all(r["status"] == 200 for r in results), results
    return {r["score"]["model_version"] for r in results}, np.array([r["score"]["probability"] for r in results])


def offline(model: TrainedModel, applications: list[dict[str, Any]]) -> np.ndarray:
    """scikit-learn's probabilities on the same feature rows (no behaviour window in the store)."""
    return model.proba(np.array([scoring_input(a, {}, WINDOW_MS).row for a in applications]))


def test_a_promotion_is_served_after_the_poll_interval(api: Api, applications: list[dict], first: TrainedModel,
                                                       second: TrainedModel) -> None:
    v1 = api.model.version
    versions, p = scored(api, applications)
    assert versions == {v1}
    np.testing.assert_allclose(p, offline(first, applications), atol=1e-6)
    v2 = promote(api.registry, second)
    api.advance_to_poll(api.settings.model.poll_interval_s - 1)
    assert scored(api, applications)[0] == {v1}  # not yet polled
    api.advance_to_poll(1)
    versions, p = scored(api, applications)
    assert versions == {v2} != {v1}
    np.testing.assert_allclose(p, offline(second, applications), atol=1e-6)
    assert not np.allclose(p, offline(first, applications), atol=1e-3)
    assert f'loanrisk_api_model_info{{version="{v2}"}} 1.0' in api.client.get("/metrics").text


def test_a_champion_that_does_not_load_leaves_the_last_good_model_serving(
        api: Api, applications: list[dict], first: TrainedModel, second: TrainedModel) -> None:
    v1 = api.model.version
    v2 = promote(api.registry, second)
    break_model_file(api.registry, v2)
    api.advance_to_poll(api.settings.model.poll_interval_s)
    versions, p = scored(api, applications)
    assert versions == {v1}
    np.testing.assert_allclose(p, offline(first, applications), atol=1e-6)
    assert v2 in (api.model.last_error or "")
    metrics = api.client.get("/metrics").text
    assert "loanrisk_api_model_load_failures_total 1.0" in metrics
    assert f'loanrisk_api_model_info{{version="{v1}"}} 1.0' in metrics
    assert api.client.get("/readyz").status_code == 200  # a model is loaded: ready, on the last good one


def test_without_any_loadable_model_scores_are_503_until_a_champion_loads(tmp_path: Path, first: TrainedModel,
                                                                          second: TrainedModel,
                                                                          applications: list[dict]) -> None:
    with running_api(tmp_path, first, before_start=break_model_file) as api:
        assert api.model.version is None
        response = api.score(applications[0])
        assert response.status_code == 503 and response.json()["error"] == "model_unavailable"
        assert "digest mismatch" in response.json()["message"]  # the damaged file is not the one registered
        ready = api.client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["reasons"][0].startswith("no model loaded")
        assert "loanrisk_api_model_loaded 0.0" in api.client.get("/metrics").text
        v2 = promote(api.registry, second)
        api.advance_to_poll(api.settings.model.poll_interval_s)
        assert api.score(applications[0]).json()["model_version"] == v2
        assert api.client.get("/readyz").status_code == 200


def test_the_app_builds_the_scorer_the_stream_builds(tmp_path: Path, first: TrainedModel) -> None:
    settings = api_settings(tmp_path / "registry")
    promote(Registry(str(tmp_path / "registry")), first)
    scorer = scorer_from_settings(settings)
    assert scorer.feature_columns == FEATURE_NAMES
    assert scorer.poll_interval_s == settings.model.poll_interval_s
    assert scorer.alert_threshold == settings.model.alert_threshold
    assert scorer.max_model_bytes == settings.model.max_model_bytes
    assert scorer.model_version == "v0001"
