"""Batch scoring through onnxruntime and per-loan reason codes (probability drop at the reference value)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.dataset import application_features, from_applications
from models.pipeline import Candidate, train_candidate
from models.registry import Registry
from models.score import Scorer, score_file
from models.synthetic import toy_applications
from udfs.scorer import MIN_IMPACT, impacts, top_reasons


@pytest.fixture(scope="module")
def cand() -> Candidate:
    ts = from_applications(toy_applications(1200, seed=31), "toy")
    return train_candidate(ts, ["logistic_regression"], budget=1, n_splits=3, threshold=0.5)


@pytest.fixture(scope="module")
def scorer(cand: Candidate) -> Scorer:
    return Scorer(cand.model_bytes, {**cand.metadata, "version": "v0009"})


def test_application_rows_and_feature_rows_score_the_same(scorer: Scorer, cand: Candidate) -> None:
    apps = toy_applications(40, seed=32)
    from_apps = scorer.score(apps, reasons=0)["default_probability"].to_numpy()
    from_feats = scorer.score(application_features(apps), reasons=0)["default_probability"].to_numpy()
    np.testing.assert_array_equal(from_apps, from_feats)
    direct = cand.trained.predict(application_features(apps)[cand.metadata["feature_names"]].to_numpy(np.float32)
                                  .astype(np.float64))
    assert np.abs(from_apps - direct).max() <= 1e-5  # ONNX path = scikit-learn path


def test_reason_codes_are_the_probability_drop_at_the_reference(scorer: Scorer, cand: Candidate) -> None:
    apps = toy_applications(25, seed=33)
    names = cand.metadata["feature_names"]
    X = application_features(apps)[names].to_numpy(np.float32)
    ref = cand.metadata["feature_reference"]
    assert set(ref) == set(names)
    got = impacts(scorer.model, X, scorer.predict(X))
    est = cand.trained.estimator  # independent check with scikit-learn, one feature at a time
    base = est.predict_proba(X.astype(np.float64))[:, 1]
    for j, name in enumerate(names):
        Xj = X.copy()
        Xj[:, j] = ref[name]
        np.testing.assert_allclose(got[:, j], base - est.predict_proba(Xj.astype(np.float64))[:, 1], atol=1e-5)
    codes = top_reasons(scorer.model, X, scorer.predict(X), 3)
    for row, imp in zip(codes, got):
        assert [f for f, _ in row] == [names[j] for j in np.argsort(-imp, kind="stable")[:3] if imp[j] > MIN_IMPACT]
    scored = scorer.score(apps, reasons=3)
    parsed = [json.loads(s) for s in scored["reason_codes"]]
    assert [[r["feature"] for r in row] for row in parsed] == [[f for f, _ in row] for row in codes]


def test_score_file_via_the_champion(tmp_path: Path, cand: Candidate) -> None:
    reg = Registry(str(tmp_path / "reg"))
    reg.promote(cand.register(reg))
    src = tmp_path / "apps.parquet"
    toy_applications(30, seed=34).to_parquet(src, index=False)
    n = score_file(Scorer.from_registry(reg), src, tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert n == 30 and out["default_probability"].between(0, 1).all() and (out["model_version"] == "v0001").all()


def test_batch_and_stream_scores_agree_on_a_registered_champion(tmp_path: Path, cand: Candidate) -> None:
    """The batch scorer and the Flink workers' scorer give the same probabilities and reason codes."""
    from contracts.features import FEATURE_NAMES
    from udfs.scorer import Scorer as StreamScorer

    reg = Registry(str(tmp_path / "reg"))
    reg.promote(cand.register(reg))
    features = application_features(toy_applications(50, seed=35))
    batch = Scorer.from_registry(reg).score(features, reasons=3)
    stream_input = features.reindex(columns=FEATURE_NAMES, fill_value=0.0)  # the stream offers every feature
    stream = StreamScorer(reg.root, FEATURE_NAMES, alert_threshold=0.0).score(stream_input)
    np.testing.assert_array_equal(stream["probability"].to_numpy(), batch["default_probability"].to_numpy())
    assert (stream["model_version"] == batch["model_version"]).all()
    batch_codes = [",".join(r["feature"] for r in json.loads(s)) for s in batch["reason_codes"]]
    assert stream["reason_codes"].tolist() == batch_codes and any(batch_codes)


def test_score_an_iceberg_table(tmp_path: Path, scorer: Scorer) -> None:
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog

    from models.score import score_table

    cat = SqlCatalog("lake", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=f"file://{tmp_path}/wh")
    cat.create_namespace("risk")
    feats = application_features(toy_applications(20, seed=36)).assign(loan_id=[f"l{i}" for i in range(20)])
    arrow = pa.Table.from_pandas(feats, preserve_index=False)
    cat.create_table("risk.features", schema=arrow.schema).append(arrow)
    n = score_table(scorer, "risk.features", tmp_path / "scored.parquet", catalog=cat, reasons=0)
    out = pd.read_parquet(tmp_path / "scored.parquet").sort_values("loan_id", key=lambda s: s.str[1:].astype(int))
    assert n == 20
    np.testing.assert_allclose(out["default_probability"], scorer.predict(feats[scorer.feature_names]
                                                                          .to_numpy(np.float32)))
