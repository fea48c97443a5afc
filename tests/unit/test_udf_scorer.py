"""udfs Scorer and Flink UDF wrapper: ONNX scores vs scikit-learn, reason codes, refusal, hot reload, last good
model at start, model digests and the size cap (folder and S3)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest

from tests.endless_source import EndlessPipe
from tests.moto_s3 import moto_server
from sklearn.linear_model import LogisticRegression

from contracts.features import FEATURE_NAMES, feature_schema_hash
from contracts.registry_layout import (
    CHAMPION_FILE, CHAMPION_HISTORY_FILE, METADATA_FILE, MODEL_FILE, MODEL_SHA256, MODEL_SIZE, ONNX_INPUT,
    ONNX_META_FEATURES, ONNX_PROBABILITIES, model_digest, version_path,
)
from models.registry import Registry, S3Store
from udfs.scorer import Scorer

REPO = Path(__file__).resolve().parents[2]
BUCKET = "udf-scorer-test"
KEYS = {"access_key_id": "testkey", "secret_access_key": "testsecret", "region": "us-east-1"}
# Model features deliberately not in contract order: the scorer must pick columns by name.
FEATS_A = ["interest_rate", "debt_to_income", "dpd_max", "credit_utilization", "missed_payments"]
FEATS_B = ["loan_to_income", "dpd_current", "income_stability"]
# The platform's registry writer (models/registry.py) takes contract order only.
FEATS_C = ["debt_to_income", "credit_utilization", "interest_rate", "dpd_max"]
FEATS_D = ["loan_to_income", "income_stability", "dpd_current"]


@dataclass
class Trained:
    """A fitted model, its ONNX bytes and metadata."""

    names: list[str]
    clf: LogisticRegression
    onnx: bytes
    reference: dict[str, float]

    def proba(self, frame: pd.DataFrame) -> np.ndarray:
        """scikit-learn's P(default) on the same float32 values the scorer feeds ONNX."""
        X = frame[self.names].to_numpy(dtype=np.float32).astype(np.float64)
        return self.clf.predict_proba(X)[:, 1]

    def metadata(self, version: str, **override: Any) -> dict[str, Any]:
        meta = {"version": version, "feature_names": self.names, "feature_schema_hash": feature_schema_hash(self.names),
                "feature_reference": self.reference, "metrics": {}}
        return {**meta, **override}

    def registration(self) -> dict[str, Any]:
        """Metadata as models/registry.py registers it: no version (the writer names it), a passed parity."""
        meta = self.metadata("")
        del meta["version"]
        return {**meta, "parity": {"passed": True}}


def _onnx(clf: LogisticRegression, k: int, meta_names: list[str] | None) -> bytes:
    """ONNX as the registry holds it; ``meta_names`` None leaves the feature_names metadata out."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = to_onnx(clf, initial_types=[(ONNX_INPUT, FloatTensorType([None, k]))], options={"zipmap": False})
    prob = [o.name for o in model.graph.output][1]
    if prob != ONNX_PROBABILITIES:  # match the layout's output name
        for node in model.graph.node:
            node.output[:] = [ONNX_PROBABILITIES if o == prob else o for o in node.output]
        for out in model.graph.output:
            out.name = ONNX_PROBABILITIES if out.name == prob else out.name
    if meta_names is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = ONNX_META_FEATURES, json.dumps(meta_names)
    return model.SerializeToString()


def train(names: list[str], seed: int, meta_names: list[str] | None | bool = True, n: int = 600) -> Trained:
    """A logistic regression on synthetic rows; ``meta_names`` True embeds ``names`` in the ONNX metadata."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(names))) * rng.uniform(0.5, 3, len(names)) + rng.uniform(-1, 1, len(names))
    X = X.astype(np.float32).astype(np.float64)
    w = rng.normal(size=len(names))
    y = ((X - X.mean(0)) / X.std(0) @ w + rng.normal(size=n) * 0.7 > 0.4).astype(int)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    reference = {name: float(v) for name, v in zip(names, X.mean(axis=0))}
    return Trained(names, clf, _onnx(clf, len(names), names if meta_names is True else meta_names or None), reference)


@pytest.fixture(scope="module")
def model_a() -> Trained:
    return train(FEATS_A, 1)


@pytest.fixture(scope="module")
def model_b() -> Trained:
    return train(FEATS_B, 2)


@pytest.fixture(scope="module")
def model_c() -> Trained:
    return train(FEATS_C, 3)


@pytest.fixture(scope="module")
def model_d() -> Trained:
    return train(FEATS_D, 4)


def stream_frame(n: int, seed: int) -> pd.DataFrame:
    """All 20 contract columns (shuffled order) as the stream offers them."""
    rng = np.random.default_rng(seed)
    cols = list(rng.permutation(FEATURE_NAMES))
    return pd.DataFrame(rng.normal(size=(n, len(cols))) * 2, columns=cols)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        _client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint


def _client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name=KEYS["region"],
                        aws_access_key_id=KEYS["access_key_id"], aws_secret_access_key=KEYS["secret_access_key"])


@dataclass
class Reg:
    """A registry written by the test with the layout's paths, read by the scorer."""

    uri: str
    s3: dict[str, str] | None
    put: Callable[[str, bytes], None]
    digests: dict[str, str] = field(default_factory=dict)  # the SHA-256 recorded for each version added

    def add(self, version: str, onnx: bytes, metadata: dict[str, Any], digest: bool = True) -> None:
        """Write a version; ``digest`` False writes it as versions were registered before digests were recorded."""
        if digest:
            self.digests[version] = model_digest(onnx)
            metadata = {**metadata, MODEL_SHA256: self.digests[version], MODEL_SIZE: len(onnx)}
        self.put(version_path(self.uri, version, MODEL_FILE), onnx)
        self.put(version_path(self.uri, version, METADATA_FILE), json.dumps(metadata).encode())

    def promote(self, version: str) -> None:
        """Point the champion at ``version``, with the digest recorded when it was added (if it was)."""
        pointer: dict[str, Any] = {"version": version, "previous": None}
        if version in self.digests:
            pointer[MODEL_SHA256] = self.digests[version]
        self.put(f"{self.uri}/{CHAMPION_FILE}", json.dumps(pointer).encode())

    def scorer(self, clock: Callable[[], float] | None = None, log: list[str] | None = None, **kw: Any) -> Scorer:
        return Scorer(self.uri, FEATURE_NAMES, s3=self.s3, clock=clock or FakeClock(),
                      log=(log.append if log is not None else lambda _m: None), **kw)


def local_reg(root: Path) -> Reg:
    def put_file(path: str, data: bytes) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return Reg(str(root), None, put_file)


@pytest.fixture(params=["folder", "s3"])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Reg:
    if request.param == "folder":
        return local_reg(tmp_path / "registry")
    return s3_reg(request.getfixturevalue("moto_endpoint"))


def s3_reg(endpoint: str) -> Reg:
    client = _client(endpoint)

    def put_object(path: str, data: bytes) -> None:
        client.put_object(Bucket=BUCKET, Key=path.removeprefix(f"s3://{BUCKET}/"), Body=data)
    return Reg(f"s3://{BUCKET}/{uuid.uuid4().hex}/models", {"endpoint": endpoint, **KEYS}, put_object)


def refusal_at_start(reg: Reg, **kw: Any) -> str:
    """Why a new scorer on ``reg`` started without a model (``Reg.promote`` records no earlier champion)."""
    scorer = reg.scorer(**kw)
    assert scorer.model_version is None
    return scorer.last_reload_error or ""


def platform_writer(reg: Reg) -> Registry:
    """models/registry.py, the writer promote and rollback go through, on the root the scorer reads."""
    return Registry(reg.uri, None if reg.s3 is None else S3Store(_client(reg.s3["endpoint"])))


def promote_new_version(registry: Registry, model: Trained) -> str:
    """Register ``model`` and make it champion (forced: the test models share no holdout)."""
    version = registry.register(model.onnx, model.registration())
    registry.promote(version, force=True, margin=0.0)
    return version


CORRUPT_MODEL = b"\x08\x07 this is not an ONNX model"


def break_model_file(registry: Registry, version: str) -> None:
    """Damage a promoted version's model.onnx in storage (the writer itself never rewrites a version): its bytes no
    longer match the SHA-256 recorded at registration and promotion."""
    registry.store.write(version_path(registry.root, version, MODEL_FILE), CORRUPT_MODEL)


def ask_for_a_missing_feature(registry: Registry, version: str) -> None:
    """Rewrite a promoted version's metadata.json so it needs a feature the stream does not compute."""
    meta = registry.metadata(version)
    meta["feature_names"] = [*meta["feature_names"][:-1], "shoe_size"]
    meta.pop("feature_schema_hash")
    registry.store.write(version_path(registry.root, version, METADATA_FILE), json.dumps(meta).encode())


def test_scores_equal_scikit_learn(reg: Reg, model_a: Trained) -> None:
    reg.add("v0001", model_a.onnx, model_a.metadata("v0001"))
    reg.promote("v0001")
    scorer = reg.scorer()
    frame = stream_frame(300, seed=5)
    out = scorer.score(frame)
    assert list(out.columns) == ["probability", "model_version", "reason_codes"] and len(out) == len(frame)
    assert out["probability"].dtype == np.float64
    np.testing.assert_allclose(out["probability"].to_numpy(), model_a.proba(frame), rtol=0, atol=1e-6)
    assert set(out["model_version"]) == {"v0001"} and scorer.model_version == "v0001"
    assert scorer.feature_names == tuple(FEATS_A) and scorer.model_load_failures == 0
    p, version, _ = scorer.score_matrix(frame[FEATURE_NAMES].to_numpy())  # positional path used by the UDF
    np.testing.assert_allclose(p, out["probability"].to_numpy(), rtol=0, atol=1e-12)
    assert version == "v0001"
    assert scorer.score(frame.iloc[:0]).shape == (0, 3)


def test_reason_codes_only_above_threshold_and_they_raise_the_score(tmp_path: Path, model_a: Trained) -> None:
    reg = local_reg(tmp_path / "r")
    reg.add("v0001", model_a.onnx, model_a.metadata("v0001"))
    reg.promote("v0001")
    frame = stream_frame(200, seed=9)
    p = model_a.proba(frame)
    threshold = float(np.quantile(p, 0.7))
    out = reg.scorer(alert_threshold=threshold, top_reasons=2).score(frame)
    alert = out["probability"].to_numpy() >= threshold
    assert 0 < alert.sum() < len(frame)
    assert (out.loc[~alert, "reason_codes"] == "").all()
    assert (out.loc[alert, "reason_codes"] != "").all()
    for i in np.flatnonzero(alert):
        listed = out.at[i, "reason_codes"].split(",")
        assert 1 <= len(listed) <= 2 and set(listed) <= set(FEATS_A)
        drops = {}
        for name in FEATS_A:  # independent recomputation with scikit-learn
            changed = frame.iloc[[i]].copy()
            changed[name] = model_a.reference[name]
            drops[name] = p[i] - model_a.proba(changed)[0]
        assert all(drops[n] > 0 for n in listed)
        assert [drops[n] for n in listed] == sorted((drops[n] for n in listed), reverse=True)
        best = sorted((d for d in drops.values() if d > 1e-6), reverse=True)[:2]
        np.testing.assert_allclose([drops[n] for n in listed], best, atol=1e-6)


def test_nulls_take_the_reference_value(reg: Reg, model_a: Trained) -> None:
    reg.add("v0001", model_a.onnx, model_a.metadata("v0001"))
    reg.promote("v0001")
    frame = stream_frame(20, seed=3)
    holes = frame.copy()
    holes.loc[::2, "dpd_max"] = np.nan
    holes.loc[1::3, "interest_rate"] = None
    filled = holes.fillna({name: model_a.reference[name] for name in ("dpd_max", "interest_rate")})
    out = reg.scorer().score(holes)
    np.testing.assert_allclose(out["probability"].to_numpy(), model_a.proba(filled), atol=1e-6)
    assert not np.allclose(out["probability"].to_numpy(), model_a.proba(frame.fillna(0)), atol=1e-4)


def test_hot_reload_after_the_poll_interval(reg: Reg, model_a: Trained, model_b: Trained) -> None:
    reg.add("v0001", model_a.onnx, model_a.metadata("v0001"))
    reg.promote("v0001")
    clock, log = FakeClock(), []
    scorer = reg.scorer(clock=clock, log=log, poll_interval_s=30)
    frame = stream_frame(50, seed=4)
    reg.add("v0002", model_b.onnx, model_b.metadata("v0002"))
    reg.promote("v0002")
    clock.t += 29.9
    assert set(scorer.score(frame)["model_version"]) == {"v0001"}  # not yet polled
    clock.t += 0.2
    out = scorer.score(frame)
    assert set(out["model_version"]) == {"v0002"} and scorer.model_version == "v0002"
    np.testing.assert_allclose(out["probability"].to_numpy(), model_b.proba(frame), atol=1e-6)
    assert scorer.model_loads == 2 and scorer.model_load_failures == 0 and scorer.last_reload_error is None
    assert len(log) == 1 and "v0002" in log[0]
    reg.promote("v0001")  # a rollback is a version change too
    clock.t += 30
    assert set(scorer.score(frame)["model_version"]) == {"v0001"}


def test_mismatched_features_are_refused(reg: Reg, model_a: Trained, model_b: Trained) -> None:
    alien = train(["interest_rate", "not_a_stream_column"], 6)
    reg.add("v0001", alien.onnx, alien.metadata("v0001"))
    reg.promote("v0001")
    assert "stream does not provide: not_a_stream_column" in refusal_at_start(reg)
    reg.add("v0002", model_a.onnx, model_a.metadata("v0002"))
    reg.promote("v0002")
    clock, log = FakeClock(), []
    scorer = reg.scorer(clock=clock, log=log, poll_interval_s=10)
    reg.promote("v0001")
    clock.t += 10
    frame = stream_frame(30, seed=8)
    out = scorer.score(frame)
    assert set(out["model_version"]) == {"v0002"}
    np.testing.assert_allclose(out["probability"].to_numpy(), model_a.proba(frame), atol=1e-6)
    assert scorer.model_load_failures == 1 and "not_a_stream_column" in (scorer.last_reload_error or "")
    assert len(log) == 1 and "v0001" in log[0] and "still scoring with v0002" in log[0]
    clock.t += 10  # the same refused version is not fetched, counted or logged again
    scorer.score(frame)
    assert scorer.model_load_failures == 1 and len(log) == 1
    reg.add("v0003", model_b.onnx, model_b.metadata("v0003"))
    reg.promote("v0003")
    clock.t += 10
    assert set(scorer.score(frame)["model_version"]) == {"v0003"} and scorer.last_reload_error is None


def test_onnx_and_metadata_feature_lists_must_agree(tmp_path: Path, model_a: Trained) -> None:
    other = train(FEATS_A, 1, meta_names=["interest_rate", "debt_to_income", "dpd_max", "credit_utilization",
                                          "late_payments"])
    reg = local_reg(tmp_path / "r")
    reg.add("v0001", other.onnx, model_a.metadata("v0001"))
    reg.promote("v0001")
    assert "only in ONNX: late_payments; only in metadata.json: missed_payments" in refusal_at_start(reg)
    unnamed = train(FEATS_A, 1, meta_names=None)
    reg.add("v0002", train(FEATS_A + ["dpd_mean"], 1, meta_names=FEATS_A).onnx, model_a.metadata("v0002"))
    reg.promote("v0002")
    assert re.search(r"input features is tensor\(float\) \[None, 6\], expected .*\[N, 5\]", refusal_at_start(reg))
    reg.add("v0003", unnamed.onnx, model_a.metadata("v0003"))
    reg.promote("v0003")
    assert "ONNX metadata_props has no JSON list 'feature_names'" in refusal_at_start(reg)
    reg.add("v0004", model_a.onnx, model_a.metadata("v0004", feature_schema_hash="0" * 16))
    reg.promote("v0004")
    assert "v0004: feature_schema_hash" in refusal_at_start(reg)


def test_corrupt_model_keeps_the_last_good_one(reg: Reg, model_a: Trained) -> None:
    reg.add("v0001", model_a.onnx, model_a.metadata("v0001"))
    reg.promote("v0001")
    clock, log = FakeClock(), []
    scorer = reg.scorer(clock=clock, log=log, poll_interval_s=5)
    reg.add("v0002", model_a.onnx[: len(model_a.onnx) // 2], model_a.metadata("v0002"))
    reg.promote("v0002")
    clock.t += 5
    frame = stream_frame(10, seed=2)
    out = scorer.score(frame)
    assert set(out["model_version"]) == {"v0001"} and scorer.model_load_failures == 1
    assert "v0002: model.onnx does not load" in (scorer.last_reload_error or "") and len(log) == 1
    assert refusal_at_start(reg).startswith("v0002: model.onnx does not load")  # no earlier champion recorded


def test_registry_trouble_while_polling_is_retried(reg: Reg, model_a: Trained, model_b: Trained) -> None:
    reg.add("v0001", model_a.onnx, model_a.metadata("v0001"))
    reg.promote("v0001")
    clock = FakeClock()
    scorer = reg.scorer(clock=clock, poll_interval_s=5)
    reg.put(f"{reg.uri}/{CHAMPION_FILE}", b"{truncated")
    clock.t += 5
    assert set(scorer.score(stream_frame(5, 1))["model_version"]) == {"v0001"}
    assert scorer.registry_poll_failures == 1 and "champion" in (scorer.last_reload_error or "")
    reg.promote("v0001")  # readable again, same version: the error is over
    clock.t += 5
    scorer.score(stream_frame(5, 1))
    assert scorer.last_reload_error is None and scorer.registry_poll_failures == 1
    reg.promote("v0002")  # pointer written before the version's files: a read error, retried next poll
    clock.t += 5
    scorer.score(stream_frame(5, 1))
    assert scorer.model_load_failures == 1 and scorer.model_version == "v0001"
    reg.add("v0002", model_b.onnx, model_b.metadata("v0002"))
    clock.t += 5
    scorer.score(stream_frame(5, 1))
    assert scorer.model_version == "v0002" and scorer.model_load_failures == 1


def test_a_new_worker_starts_on_the_last_good_champion_when_the_champion_is_corrupt(
        reg: Reg, model_c: Trained, model_d: Trained) -> None:
    registry = platform_writer(reg)
    good = promote_new_version(registry, model_c)
    bad = promote_new_version(registry, model_d)
    break_model_file(registry, bad)
    clock, log = FakeClock(), []
    scorer = reg.scorer(clock=clock, log=log, poll_interval_s=10)
    frame = stream_frame(40, seed=11)
    out = scorer.score(frame)
    assert set(out["model_version"]) == {good}
    np.testing.assert_allclose(out["probability"].to_numpy(), model_c.proba(frame), atol=1e-6)
    assert scorer.model_load_failures == 1 and scorer.registry_poll_failures == 0
    assert len(log) == 1 and log[0].startswith(
        f"champion {bad} not loaded, scoring with earlier champion {good} instead: {bad}: digest mismatch: expected "
        f"{registry.champion()[MODEL_SHA256]}, got {model_digest(CORRUPT_MODEL)}")
    clock.t += 10  # the refused champion is not fetched, counted or logged again
    scorer.score(frame)
    assert scorer.model_load_failures == 1 and len(log) == 1 and scorer.model_version == good


def test_a_new_worker_passes_over_every_broken_champion_down_to_the_newest_good_one(
        reg: Reg, model_c: Trained, model_d: Trained) -> None:
    registry = platform_writer(reg)
    good = promote_new_version(registry, model_c)
    corrupt = promote_new_version(registry, model_d)
    break_model_file(registry, corrupt)
    incompatible = promote_new_version(registry, model_c)
    ask_for_a_missing_feature(registry, incompatible)
    log: list[str] = []
    scorer = reg.scorer(log=log)
    assert scorer.model_version == good and scorer.model_load_failures == 2
    assert len(log) == 1
    assert log[0].startswith(f"champion {incompatible} not loaded, scoring with earlier champion {good} instead: "
                             f"{incompatible}: the model needs features the stream does not provide: shoe_size")
    assert f"earlier champion {corrupt} not loaded either: {corrupt}: digest mismatch: expected " in log[0]


def test_a_rolled_back_version_is_not_taken_as_the_last_good_one(reg: Reg, model_c: Trained,
                                                                 model_d: Trained) -> None:
    registry = platform_writer(reg)
    oldest = promote_new_version(registry, model_c)
    middle = promote_new_version(registry, model_d)
    rolled_back = promote_new_version(registry, model_c)
    registry.rollback()
    break_model_file(registry, middle)
    assert reg.scorer().model_version == oldest != rolled_back


def test_an_unreadable_pointer_at_start_falls_back_to_the_champion_history(reg: Reg, model_c: Trained,
                                                                          model_d: Trained) -> None:
    registry = platform_writer(reg)
    first = promote_new_version(registry, model_c)
    second = promote_new_version(registry, model_d)
    reg.put(f"{reg.uri}/{CHAMPION_FILE}", b"{truncated")
    log: list[str] = []
    scorer = reg.scorer(log=log)
    assert scorer.model_version == second
    assert scorer.registry_poll_failures == 1 and scorer.model_load_failures == 0
    assert len(log) == 1 and log[0].startswith(
        f"champion pointer not readable, scoring with {second} from {CHAMPION_HISTORY_FILE} instead")
    break_model_file(registry, second)
    assert reg.scorer().model_version == first


def test_a_registry_whose_only_champion_is_corrupt_scores_null_until_a_good_champion_is_promoted(
        reg: Reg, model_c: Trained, model_d: Trained) -> None:
    registry = platform_writer(reg)
    bad = promote_new_version(registry, model_c)
    break_model_file(registry, bad)
    clock, log = FakeClock(), []
    scorer = reg.scorer(clock=clock, log=log, poll_interval_s=10)
    frame = stream_frame(6, seed=13)
    out = scorer.score(frame)
    assert out["probability"].isna().all() and out["model_version"].isna().all() and out["reason_codes"].isna().all()
    p, version, reasons = scorer.score_matrix(frame[FEATURE_NAMES].to_numpy())
    assert np.isnan(p).all() and version is None and reasons == [None] * len(frame)
    assert scorer.model_version is None and scorer.model_unavailable_rows == 2 * len(frame)
    assert scorer.model_load_failures == 1 and len(log) == 1
    assert log[0].startswith(f"no model to score with, rows get NULL scores until a champion loads: {bad}: ")
    clock.t += 10  # nothing changed: the refused champion is not fetched, counted or logged again
    scorer.score(frame)
    assert scorer.model_load_failures == 1 and len(log) == 1
    good = promote_new_version(registry, model_d)
    clock.t += 10
    out = scorer.score(frame)
    assert set(out["model_version"]) == {good} and scorer.last_reload_error is None
    np.testing.assert_allclose(out["probability"].to_numpy(), model_d.proba(frame), atol=1e-6)
    assert log[-1] == f"champion {good} loaded (was no model)" and len(log) == 2


def test_an_empty_registry_starts_without_a_model_and_picks_up_the_first_champion(reg: Reg,
                                                                                  model_a: Trained) -> None:
    clock, log = FakeClock(), []
    scorer = reg.scorer(clock=clock, log=log, poll_interval_s=10)
    assert scorer.model_version is None and scorer.feature_names == ()
    assert scorer.registry_poll_failures == 1 and scorer.model_load_failures == 0
    assert len(log) == 1 and f"{CHAMPION_FILE} does not exist" in log[0]
    frame = stream_frame(4, seed=1)
    assert scorer.score(frame)["probability"].isna().all()
    clock.t += 10  # every poll reads the pointer again and counts the failure; the log says it once
    assert scorer.score(frame)["probability"].isna().all()
    assert scorer.registry_poll_failures == 2 and len(log) == 1
    reg.add("v0001", model_a.onnx, model_a.metadata("v0001"))
    reg.promote("v0001")
    clock.t += 10
    assert set(scorer.score(frame)["model_version"]) == {"v0001"} and scorer.registry_poll_failures == 2


def test_missing_frame_column_is_named(tmp_path: Path, model_a: Trained) -> None:
    reg = local_reg(tmp_path / "r")
    reg.add("v0001", model_a.onnx, model_a.metadata("v0001"))
    reg.promote("v0001")
    with pytest.raises(KeyError, match="dpd_max"):
        reg.scorer().score(stream_frame(3, 1).drop(columns=["dpd_max"]))


def replace_model_file(registry: Registry, version: str, onnx: bytes) -> None:
    """Swap a registered version's model.onnx in storage for other bytes, as someone with write access could."""
    registry.store.write(version_path(registry.root, version, MODEL_FILE), onnx)


def written_before_digests(registry: Registry) -> None:
    """Rewrite every version's metadata.json and the champion pointer as the writer wrote them before it recorded
    model digests (the same documents without ``model_sha256`` and ``model_size_bytes``)."""
    for version in registry.versions():
        meta = {k: v for k, v in registry.metadata(version).items() if k not in (MODEL_SHA256, MODEL_SIZE)}
        registry.store.write(version_path(registry.root, version, METADATA_FILE), json.dumps(meta).encode())
    pointer = registry.champion()
    if pointer is not None:
        old = {k: v for k, v in pointer.items() if k not in (MODEL_SHA256, MODEL_SIZE)}
        registry.store.write(f"{registry.root}/{CHAMPION_FILE}", json.dumps(old).encode())


def promote_as_before_digests(registry: Registry, version: str, previous: str) -> None:
    """Point the champion at ``version`` the way the writer did before digests: no digest in the pointer."""
    pointer = {"version": version, "promoted_at": "2026-01-01T00:00:00+00:00", "previous": previous,
               "history": [previous], "forced": True, "comparison": None}
    registry.store.write(f"{registry.root}/{CHAMPION_FILE}", json.dumps(pointer).encode())


def test_a_tampered_model_file_is_refused_and_the_last_good_model_keeps_scoring(reg: Reg, model_c: Trained,
                                                                               model_d: Trained) -> None:
    registry = platform_writer(reg)
    good = promote_new_version(registry, model_c)
    clock, log = FakeClock(), []
    scorer = reg.scorer(clock=clock, log=log, poll_interval_s=10)
    tampered = promote_new_version(registry, model_d)
    impostor = train(FEATS_D, 40)  # loads and fits the stream like model_d: only its digest tells it apart
    replace_model_file(registry, tampered, impostor.onnx)
    clock.t += 10
    frame = stream_frame(30, seed=17)
    out = scorer.score(frame)
    assert set(out["model_version"]) == {good}
    np.testing.assert_allclose(out["probability"].to_numpy(), model_c.proba(frame), atol=1e-6)
    reason = f"{tampered}: digest mismatch: expected {model_digest(model_d.onnx)}, got {model_digest(impostor.onnx)}"
    assert scorer.model_load_failures == 1 and (scorer.last_reload_error or "").startswith(reason)
    assert len(log) == 1 and log[0].startswith(f"champion {tampered} not loaded, still scoring with {good}: {reason}")
    assert "expected as recorded in champion.json" in log[0]
    clock.t += 10  # the refused champion is not fetched, counted or logged again
    scorer.score(frame)
    assert scorer.model_load_failures == 1 and len(log) == 1 and scorer.model_version == good
    started: list[str] = []
    assert reg.scorer(log=started).model_version == good  # a worker starting now refuses it too
    assert started[0].startswith(f"champion {tampered} not loaded, scoring with earlier champion {good} instead: {reason}")
    replacement = promote_new_version(registry, model_d)  # registered again: a new version, a new digest
    clock.t += 10
    out = scorer.score(frame)
    assert set(out["model_version"]) == {replacement} and scorer.last_reload_error is None
    np.testing.assert_allclose(out["probability"].to_numpy(), model_d.proba(frame), atol=1e-6)


def test_an_earlier_champion_tried_at_start_is_checked_against_the_digest_in_its_metadata(
        reg: Reg, model_c: Trained, model_d: Trained) -> None:
    registry = platform_writer(reg)
    oldest = promote_new_version(registry, model_c)
    earlier = promote_new_version(registry, model_d)
    champion = promote_new_version(registry, model_c)
    replace_model_file(registry, earlier, train(FEATS_D, 41).onnx)
    break_model_file(registry, champion)
    log: list[str] = []
    scorer = reg.scorer(log=log)
    assert scorer.model_version == oldest and scorer.model_load_failures == 2 and len(log) == 1
    assert log[0].startswith(f"champion {champion} not loaded, scoring with earlier champion {oldest} instead: "
                             f"{champion}: digest mismatch: expected {model_digest(model_c.onnx)}")
    assert (f"earlier champion {earlier} not loaded either: {earlier}: digest mismatch: expected "
            f"{model_digest(model_d.onnx)}") in log[0]
    assert "expected as recorded in metadata.json" in log[0]


def test_a_registry_written_before_digests_still_scores_with_one_warning_per_version(
        reg: Reg, model_c: Trained, model_d: Trained) -> None:
    registry = platform_writer(reg)
    first = promote_new_version(registry, model_c)
    second = registry.register(model_d.onnx, model_d.registration())
    written_before_digests(registry)
    clock, log = FakeClock(), []
    scorer = reg.scorer(clock=clock, log=log, poll_interval_s=10)
    frame = stream_frame(25, seed=19)
    out = scorer.score(frame)
    assert set(out["model_version"]) == {first} and scorer.model_load_failures == 0
    np.testing.assert_allclose(out["probability"].to_numpy(), model_c.proba(frame), atol=1e-6)
    assert log == [f"{first} loaded without a digest check: neither {CHAMPION_FILE} nor its {METADATA_FILE} records "
                   f"{MODEL_SHA256} (registered before model digests; promoting or rolling back to it records one)"]
    promote_as_before_digests(registry, second, first)  # an old writer's promotion
    clock.t += 10
    assert set(scorer.score(frame)["model_version"]) == {second}
    assert log[1].startswith(f"{second} loaded without a digest check") and log[2] == f"champion {second} loaded (was {first})"
    promote_as_before_digests(registry, first, second)
    clock.t += 10
    assert set(scorer.score(frame)["model_version"]) == {first}
    assert log[3:] == [f"champion {first} loaded (was {second})"]  # warned about once per version, not per load
    registry.promote(second, force=True)  # the current writer pins the old version's file as it is now
    replace_model_file(registry, second, train(FEATS_D, 42).onnx)
    clock.t += 10
    assert set(scorer.score(frame)["model_version"]) == {first} and scorer.model_load_failures == 1
    assert f"{second}: digest mismatch: expected {model_digest(model_d.onnx)}" in (scorer.last_reload_error or "")


SIZE_CAP = 256 * 1024


def test_a_model_over_the_size_cap_is_refused_without_being_read_whole(tmp_path: Path, model_c: Trained,
                                                                      model_d: Trained) -> None:
    reg = local_reg(tmp_path / "registry")
    registry = platform_writer(reg)
    good = promote_new_version(registry, model_c)
    clock, log = FakeClock(), []
    scorer = reg.scorer(clock=clock, log=log, poll_interval_s=10, max_model_bytes=SIZE_CAP)
    oversized = promote_new_version(registry, model_d)
    model_file = Path(version_path(registry.root, oversized, MODEL_FILE))
    model_file.unlink()
    frame = stream_frame(10, seed=23)
    with EndlessPipe(model_file) as endless:  # a model file that never ends
        clock.t += 10
        out = scorer.score(frame)
    assert set(out["model_version"]) == {good} and scorer.model_load_failures == 1
    assert scorer.last_reload_error == (f"{oversized}: {MODEL_FILE} is over the size cap model.max_model_bytes "
                                        f"({SIZE_CAP} bytes): more than that; not read further")
    assert len(log) == 1 and log[0].startswith(f"champion {oversized} not loaded, still scoring with {good}")
    assert endless.written < SIZE_CAP + (1 << 20), f"{endless.written} bytes read for a {SIZE_CAP}-byte cap"
    clock.t += 10  # refused for good: not opened again until the pointer moves
    scorer.score(frame)
    assert scorer.model_load_failures == 1 and len(log) == 1


def test_a_model_recorded_over_the_size_cap_is_not_downloaded(tmp_path: Path, model_c: Trained) -> None:
    reg = local_reg(tmp_path / "registry")
    registry = platform_writer(reg)
    version = promote_new_version(registry, model_c)
    size = len(model_c.onnx)
    Path(version_path(registry.root, version, MODEL_FILE)).unlink()  # a download would fail differently
    assert refusal_at_start(replace(reg, digests={}), max_model_bytes=size - 1) == (
        f"{version}: {MODEL_FILE} is {size} bytes as recorded in {CHAMPION_FILE}, over the size cap "
        f"model.max_model_bytes ({size - 1} bytes); not downloaded")


FLINK_CHECK = r"""
import json, pickle, sys
import numpy as np, pandas as pd
import cloudpickle
from pyflink.table import Row
from pyflink.table.types import create_arrow_schema
from pyflink.table.utils import pandas_to_arrow
from udfs import flink_udf as F

cfg = json.loads(sys.argv[1])

class Counter:
    def __init__(self): self.n = 0
    def inc(self, n=1): self.n += n

class Dist:
    def __init__(self): self.values = []
    def update(self, v): self.values.append(v)

class Group:
    def __init__(self): self.counters, self.gauges, self.dists = {}, {}, {}
    def counter(self, name): return self.counters.setdefault(name, Counter())
    def gauge(self, name, fn): self.gauges[name] = fn
    def distribution(self, name): return self.dists.setdefault(name, Dist())

class Ctx:
    def __init__(self, params): self.params, self.group = params, Group()
    def get_job_parameter(self, key, default): return self.params.get(key, default)
    def get_metric_group(self): return self.group

def to_arrow(frame):  # as the pandas UDF's result goes back to Java
    return pandas_to_arrow(create_arrow_schema(["r"], [F.RESULT_TYPE]), "UTC", [F.RESULT_TYPE], [frame])

X = np.asarray(cfg["rows"], dtype=np.float64)
X[0, F.FEATURE_NAMES.index(cfg["null_column"])] = np.nan
vec = cloudpickle.loads(cloudpickle.dumps(F.score_loan._func))  # as shipped to a worker
ctx = Ctx(cfg["params"])
vec.open(ctx)
out = vec.eval(*[pd.Series(X[:, j]) for j in range(X.shape[1])])
row_fn = cloudpickle.loads(cloudpickle.dumps(F.score_loan_row._func))
row_fn.open(Ctx(cfg["params"]))
row = row_fn.eval(*[None if np.isnan(v) else float(v) for v in X[0]])
g = ctx.group
no_model_ctx = Ctx(cfg["no_model_params"])
no_model = cloudpickle.loads(cloudpickle.dumps(F.score_loan._func))
no_model.open(no_model_ctx)
unscored = no_model.eval(*[pd.Series(X[:, j]) for j in range(X.shape[1])])
no_model_row = cloudpickle.loads(cloudpickle.dumps(F.score_loan_row._func))
no_model_row.open(Ctx(cfg["no_model_params"]))
unscored_row = no_model_row.eval(*[float(v) for v in X[1]])
print(json.dumps({
    "feature_names": F.FEATURE_NAMES, "type": type(out).__name__, "columns": list(out.columns),
    "probability": out["probability"].tolist(), "version": out["model_version"].tolist(),
    "reasons": out["reason_codes"].tolist(), "row": [row[0], row[1], row[2]], "row_is_row": isinstance(row, Row),
    "challengers": [[list(pair) for pair in r] for r in out["challengers"]], "row_challengers": row[3],
    "challengers_gauge": g.gauges["challengers_scored"](),
    "func_types": [F.score_loan._func_type, F.score_loan_row._func_type],
    "scored_rows": g.counters["scored_rows"].n, "failures": g.counters["model_load_failures"].n,
    "gauge": g.gauges["model_version_number"](), "calls": g.counters["score_calls"].n,
    "latency_us": g.counters["score_latency_us"].n,
    "params": sorted(F.JOB_PARAMETERS),
    "max_model_bytes": vec._scorer.max_model_bytes,
    "default_max_model_bytes": no_model._scorer.max_model_bytes,
    "quoted": F.global_job_parameters({"model.registry_uri": "s3://b/m", "x": "it's"}),
    "scored_nulls": [f.null_count for f in to_arrow(out).column(0).flatten()],
    "unscored_nulls": [f.null_count for f in to_arrow(unscored).column(0).flatten()],
    "unscored_row": [unscored_row[0], unscored_row[1], unscored_row[2]],
    "unscored_rows": no_model_ctx.group.counters["model_unavailable_rows"].n,
    "unscored_failures": no_model_ctx.group.counters["registry_poll_failures"].n,
    "unscored_gauge": no_model_ctx.group.gauges["model_version_number"](),
}))
"""


@pytest.mark.setup  # runs the UDF in the Flink runtime environment
def test_flink_udf_in_the_flink_environment(moto_endpoint: str, model_a: Trained, model_b: Trained) -> None:
    """The UDF class in the Flink venv (pickled as shipped, fake FunctionContext), reading the registry on S3: the
    champion's score and a shadow challenger's in the one result, through the Arrow conversion back to Java."""
    from loanrisk.settings import get_settings

    python = get_settings().flink_python
    if not python.exists():
        pytest.fail(f"{python} missing: run `make setup` (riskctl setup) first")
    reg = s3_reg(moto_endpoint)
    reg.add("v0012", model_a.onnx, model_a.metadata("v0012"))
    reg.promote("v0012")
    reg.add("v0013", model_b.onnx, model_b.metadata("v0013"))
    reg.put(f"{reg.uri}/challengers.json", json.dumps({"challengers": [
        {"version": "v0013", MODEL_SHA256: reg.digests["v0013"], MODEL_SIZE: len(model_b.onnx)}]}).encode())
    frame = stream_frame(40, seed=12)
    params = {"model.registry_uri": reg.uri, "model.alert_threshold": "0.3", "model.poll_interval_s": "60",
              "model.max_model_bytes": "123456", "s3.endpoint": moto_endpoint, "s3.region": "us-east-1",
              "s3.access_key_id": KEYS["access_key_id"], "s3.secret_access_key": KEYS["secret_access_key"]}
    no_model_params = {**{k: v for k, v in params.items() if k != "model.max_model_bytes"},
                       "model.registry_uri": s3_reg(moto_endpoint).uri}  # nothing promoted there; the default cap
    cfg = {"params": params, "no_model_params": no_model_params, "rows": frame[FEATURE_NAMES].to_numpy().tolist(),
           "null_column": "dpd_max"}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([str(python), "-c", FLINK_CHECK, json.dumps(cfg)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["feature_names"] == FEATURE_NAMES
    assert got["type"] == "DataFrame" and got["columns"] == ["probability", "model_version", "reason_codes",
                                                             "challengers"]
    expected = frame.copy()
    expected.loc[expected.index[0], "dpd_max"] = model_a.reference["dpd_max"]
    want = Scorer(reg.uri, FEATURE_NAMES, s3=reg.s3, alert_threshold=0.3).score(expected)
    np.testing.assert_allclose(got["probability"], model_a.proba(expected), atol=1e-6)
    assert got["reasons"] == want["reason_codes"].tolist() and any(got["reasons"])
    assert set(got["version"]) == {"v0012"}
    assert got["row"][1] == "v0012" and got["row_is_row"] and got["row"][2] == got["reasons"][0]
    assert abs(got["row"][0] - got["probability"][0]) < 1e-9
    assert got["func_types"] == ["pandas", "general"]
    assert got["scored_rows"] == len(frame) and got["failures"] == 0 and got["gauge"] == 12 and got["calls"] == 1
    assert got["latency_us"] > 0
    assert got["params"] == sorted(["model.registry_uri", "model.poll_interval_s", "model.alert_threshold",
                                    "model.max_model_bytes", "s3.endpoint", "s3.region", "s3.access_key_id",
                                    "s3.secret_access_key", "s3.session_token"])
    assert got["max_model_bytes"] == 123456 and got["default_max_model_bytes"] == 64 * 1024 * 1024
    assert json.loads(got["quoted"]) == {"model.registry_uri": "s3://b/m", "x": "it's"}
    assert [[v for v, _ in r] for r in got["challengers"]] == [["v0013"]] * len(frame)
    np.testing.assert_allclose([p for r in got["challengers"] for _, p in r], model_b.proba(expected), atol=1e-6)
    assert got["row_challengers"] == {"v0013": pytest.approx(got["challengers"][0][0][1], abs=1e-9)}
    assert got["challengers_gauge"] == 1
    # The map column goes back as a non-null map per row; without challengers an empty one (the UNNEST's no rows).
    assert got["scored_nulls"] == [0, 0, 0, 0] and got["unscored_nulls"] == [len(frame)] * 3 + [0]
    assert got["unscored_row"] == [None, None, None] and got["unscored_rows"] == len(frame)
    assert got["unscored_failures"] == 1 and got["unscored_gauge"] == 0


def challenge_new_version(registry: Registry, model: Trained) -> str:
    """Register ``model`` and make it a shadow challenger."""
    version = registry.register(model.onnx, model.registration())
    registry.challenge(version)
    return version


def shadow_scores(scorer: Scorer, frame: pd.DataFrame) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
    """(the champion's probabilities, each row's challenger results) as the UDF gets them for ``frame``."""
    X = frame[FEATURE_NAMES].to_numpy(dtype=np.float64)
    p, _, _ = scorer.score_matrix(X)
    return p, scorer.challenger_scores(X)


def test_challengers_are_scored_beside_the_champion_and_followed_by_polling(reg: Reg, model_c: Trained,
                                                                           model_d: Trained) -> None:
    registry = platform_writer(reg)
    champion = promote_new_version(registry, model_c)
    challenger = challenge_new_version(registry, model_d)
    clock, log = FakeClock(), []
    scorer = reg.scorer(clock=clock, log=log, poll_interval_s=10, shadow=True)
    frame = stream_frame(25, seed=31)
    frame.loc[frame.index[0], "dpd_current"] = np.nan  # a null takes the challenger's own reference value
    p, shadow = shadow_scores(scorer, frame)
    np.testing.assert_allclose(p, model_c.proba(frame), atol=1e-6)  # the champion's scores are unchanged
    assert all([v for v, _ in row] == [challenger] for row in shadow)
    expected = frame.copy()
    expected.loc[expected.index[0], "dpd_current"] = model_d.reference["dpd_current"]
    np.testing.assert_allclose([q for row in shadow for _, q in row], model_d.proba(expected), atol=1e-6)
    assert reg.scorer().challenger_versions == (), "a scorer not in shadow mode (the API's) scores no challenger"
    registry.withdraw(challenger)
    clock.t += 10
    assert shadow_scores(scorer, frame)[1] == [[] for _ in range(len(frame))]
    registry.challenge(challenger)
    clock.t += 10
    assert shadow_scores(scorer, frame)[1][0][0][0] == challenger
    registry.promote(challenger, force=True)  # the promoted challenger leaves the list
    assert registry.challengers() == []
    clock.t += 10
    p, shadow = shadow_scores(scorer, frame)
    assert scorer.model_version == challenger and shadow == [[] for _ in range(len(frame))]
    assert any(m == f"challenger {challenger} loaded: scored in shadow beside champion {champion}" for m in log)


def test_a_tampered_or_oversized_challenger_is_left_out_and_the_champion_keeps_scoring(reg: Reg, model_c: Trained,
                                                                                      model_d: Trained) -> None:
    registry = platform_writer(reg)
    champion = promote_new_version(registry, model_c)
    tampered = challenge_new_version(registry, model_d)
    impostor = train(FEATS_D, 41)
    replace_model_file(registry, tampered, impostor.onnx)
    clock, log = FakeClock(), []
    scorer = reg.scorer(clock=clock, log=log, poll_interval_s=10, shadow=True)
    frame = stream_frame(10, seed=32)
    p, shadow = shadow_scores(scorer, frame)
    np.testing.assert_allclose(p, model_c.proba(frame), atol=1e-6)
    assert scorer.model_version == champion and shadow == [[] for _ in range(len(frame))]
    assert scorer.challenger_load_failures == 1 and scorer.model_load_failures == 0
    assert any(m.startswith(f"challenger {tampered} not loaded, not scored in shadow: {tampered}: digest mismatch")
               and "expected as recorded in challengers.json" in m for m in log)
    clock.t += 10  # refused for good: not fetched or counted again
    shadow_scores(scorer, frame)
    assert scorer.challenger_load_failures == 1
    registry.withdraw(tampered)
    large = challenge_new_version(registry, model_d)
    small = reg.scorer(shadow=True, max_model_bytes=len(model_d.onnx) - 1)
    assert small.challenger_versions == () and small.challenger_load_failures == 1
    assert small.model_version is None or small.model_version == champion
    assert reg.scorer(shadow=True).challenger_versions == (large,)
