"""Registry: layout, versioning, refusal of bad models, promote/rollback rules, model digests; local folder and moto
S3 server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pytest

from tests.moto_s3 import free_port, moto_server

from contracts.registry_layout import (
    CHAMPION_FILE, CHAMPION_HISTORY_FILE, METADATA_FILE, MODEL_FILE, MODEL_SHA256, MODEL_SIZE, model_digest,
    version_path,
)
from models.dataset import TrainingSet, from_applications
from models.errors import FeatureMismatchError, ParityError, PromotionRefused, RegistryError
from models.pipeline import Candidate, train_candidate
from models.registry import LocalStore, Registry, S3Store
from models.score import Scorer
from models.synthetic import toy_applications

STRONG = None  # all application features
WEAK = ["emp_length_years", "delinquencies_2y"]  # carry no signal in the toy data

METADATA_KEYS = {"version", "created_at", "feature_names", "feature_schema_hash", "feature_reference", "metrics",
                 "params", "family", "parity", "holdout", "training_data", "snapshot_ids", "code_version",
                 "calibration", "class_weighting", "alert_threshold", MODEL_SHA256, MODEL_SIZE}


def _train(ts: TrainingSet, features: list[str] | None) -> Candidate:
    sub = ts if features is None else replace(ts, features=ts.features[features])
    return train_candidate(sub, ["logistic_regression"], budget=1, n_splits=3, threshold=0.5)


@pytest.fixture(scope="module")
def toy() -> TrainingSet:
    return from_applications(toy_applications(1500, seed=21), "toy")


@pytest.fixture(scope="module")
def strong(toy: TrainingSet) -> Candidate:
    return _train(toy, STRONG)


@pytest.fixture(scope="module")
def weak(toy: TrainingSet) -> Candidate:
    return _train(toy, WEAK)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                     region_name="us-east-1").create_bucket(Bucket="registry-test")
        yield endpoint


@pytest.fixture(params=["folder", "file-uri", "moto-s3"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    if request.param == "folder":
        return Registry(str(tmp_path / "reg"))
    if request.param == "file-uri":
        return Registry(f"file://{tmp_path}/reg")
    endpoint = request.getfixturevalue("moto_endpoint")
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
    return Registry(f"s3://registry-test/{uuid.uuid4().hex}/models", S3Store(client))


def test_register_writes_the_layout_and_numbers_versions(registry: Registry, strong: Candidate,
                                                         weak: Candidate) -> None:
    assert registry.versions() == [] and registry.champion() is None
    assert strong.register(registry) == "v0001"
    assert weak.register(registry) == "v0002"
    assert registry.versions() == ["v0001", "v0002"]
    for v in ("v0001", "v0002"):
        assert registry.store.read(f"{registry.root}/versions/{v}/{MODEL_FILE}")[:2]  # bytes present
        meta = json.loads(registry.store.read(f"{registry.root}/versions/{v}/{METADATA_FILE}"))
        assert METADATA_KEYS <= set(meta) and meta["version"] == v and meta["parity"]["passed"]
    listed = registry.list_versions()
    assert [r["version"] for r in listed] == ["v0001", "v0002"] and not any(r["champion"] for r in listed)
    with pytest.raises(RegistryError, match="no champion"):
        registry.load()


def test_promote_and_rollback_rules(registry: Registry, strong: Candidate, weak: Candidate) -> None:
    w = weak.register(registry)
    s = strong.register(registry)
    first = registry.promote(w, margin=0.005)  # no champion yet: promoted on parity alone
    assert first["version"] == w and first["previous"] is None
    up = registry.promote(s, margin=0.005)  # beats the champion on the same holdout
    assert up["version"] == s and up["previous"] == w
    assert up["comparison"]["challenger"] >= up["comparison"]["champion"] + 0.005
    with pytest.raises(PromotionRefused, match="does not beat"):
        registry.promote(w, margin=0.005)
    with pytest.raises(PromotionRefused, match="already the champion"):
        registry.promote(s)
    forced = registry.promote(w, force=True, margin=0.005)
    assert forced["version"] == w and forced["forced"] and forced["history"] == [w, s]
    pointer = json.loads(registry.store.read(f"{registry.root}/{CHAMPION_FILE}"))
    assert pointer["version"] == w and pointer["previous"] == s
    assert registry.rollback()["version"] == s
    assert registry.rollback()["version"] == w
    with pytest.raises(PromotionRefused, match="no previous champion"):
        registry.rollback()
    assert registry.load()[1]["version"] == w


def champions_in_history(registry: Registry) -> list[str]:
    """The champions listed in champion_history.json."""
    return json.loads(registry.store.read(f"{registry.root}/{CHAMPION_HISTORY_FILE}"))["champions"]


def test_promote_and_rollback_copy_the_champions_to_the_champion_history(registry: Registry, strong: Candidate,
                                                                         weak: Candidate) -> None:
    w = weak.register(registry)
    s = strong.register(registry)
    registry.promote(w)
    assert champions_in_history(registry) == [w]
    registry.promote(s, force=True, margin=0.0)
    registry.promote(w, force=True, margin=0.0)
    assert champions_in_history(registry) == [w, s, w]
    pointer = registry.rollback()
    assert champions_in_history(registry) == [*pointer["history"], pointer["version"]] == [w, s]


class HistoryWriteFails(LocalStore):
    """A folder where writing the champion history fails (full disk, lost permission)."""

    def write(self, path: str, data: bytes) -> None:
        if path.endswith(CHAMPION_HISTORY_FILE):
            raise PermissionError(path)
        super().write(path, data)


def test_a_failed_champion_history_write_says_the_promotion_took_effect(tmp_path: Path, weak: Candidate) -> None:
    reg = Registry(str(tmp_path), HistoryWriteFails())
    version = weak.register(reg)
    with pytest.raises(RegistryError, match=f"{version} is champion, but .*{CHAMPION_HISTORY_FILE} was not updated"):
        reg.promote(version)
    assert reg.champion()["version"] == version


def test_margin_is_required_not_just_any_improvement(tmp_path: Path, strong: Candidate, weak: Candidate) -> None:
    reg = Registry(str(tmp_path))
    reg.promote(weak.register(reg))
    s = strong.register(reg)
    strong_auc, weak_auc = (c.metadata["metrics"]["holdout"]["model"]["roc_auc"] for c in (strong, weak))
    gain = strong_auc - weak_auc
    assert gain > 0
    with pytest.raises(PromotionRefused, match="margin"):
        reg.promote(s, margin=gain + 0.01)
    assert reg.promote(s, margin=gain - 0.01)["version"] == s


def test_different_holdouts_need_a_common_one(tmp_path: Path, strong: Candidate) -> None:
    other = _train(from_applications(toy_applications(1500, seed=22), "toy"), WEAK)
    reg = Registry(str(tmp_path))
    reg.promote(other.register(reg))
    s = strong.register(reg)
    with pytest.raises(PromotionRefused, match="same holdout"):
        reg.promote(s)
    assert strong.holdout is not None
    pointer = reg.promote(s, holdout=strong.holdout, margin=0.0)  # both re-scored through ONNX on it
    assert pointer["comparison"]["challenger"] > pointer["comparison"]["champion"]


def test_refuses_models_without_parity_or_with_mismatched_features(tmp_path: Path, strong: Candidate) -> None:
    reg = Registry(str(tmp_path))
    meta = strong.metadata
    with pytest.raises(ParityError):
        reg.register(strong.model_bytes, {**meta, "parity": {**meta["parity"], "passed": False}})
    shuffled = list(reversed(meta["feature_names"]))
    with pytest.raises(FeatureMismatchError):  # not contract order / differs from the ONNX's own list
        reg.register(strong.model_bytes, {**meta, "feature_names": shuffled})
    renamed = ["loan_amount" if n == "loan_to_income" else n for n in meta["feature_names"]]
    with pytest.raises(FeatureMismatchError, match="not in contracts"):
        reg.register(strong.model_bytes, {**meta, "feature_names": renamed})
    from contracts.features import feature_schema_hash
    fewer = meta["feature_names"][:-1]
    with pytest.raises(FeatureMismatchError, match="ONNX metadata"):
        reg.register(strong.model_bytes, {**meta, "feature_names": fewer,
                                           "feature_schema_hash": feature_schema_hash(fewer)})
    assert reg.versions() == []


def test_scorer_refuses_input_without_the_model_features(tmp_path: Path, strong: Candidate) -> None:
    reg = Registry(str(tmp_path))
    reg.promote(strong.register(reg))
    scorer = Scorer.from_registry(reg)
    frame = strong.holdout.features.drop(columns=["credit_utilization"]).head(5)
    with pytest.raises(Exception, match="credit_utilization"):
        scorer.score(frame)
    from models.compat import check_model
    model, meta = reg.load()
    with pytest.raises(FeatureMismatchError, match="differ from the expected columns"):
        check_model(model, meta, expected=list(reversed(meta["feature_names"])), exact=True)


def test_registry_from_settings_uses_the_s3_endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,
                                                     strong: Candidate) -> None:
    from loanrisk.settings import get_settings

    port = moto_endpoint.rsplit(":", 1)[1]
    monkeypatch.setenv("LOANRISK_S3__PORT", port)
    monkeypatch.setenv("LOANRISK_S3__BUCKET", "registry-test")
    monkeypatch.setenv("LOANRISK_MODEL__REGISTRY_URI", f"s3://registry-test/{uuid.uuid4().hex}")
    get_settings.cache_clear()
    try:
        reg = Registry.from_settings()
        v = strong.register(reg)
        reg.promote(v)
        model, meta = Registry.from_settings().load()
        assert model == strong.model_bytes and meta["version"] == v
    finally:
        get_settings.cache_clear()


def test_unreachable_s3_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from loanrisk.settings import get_settings

    monkeypatch.setenv("LOANRISK_S3__PORT", str(free_port()))
    monkeypatch.setenv("LOANRISK_MODEL__REGISTRY_URI", "s3://nowhere/models")
    get_settings.cache_clear()
    try:
        with pytest.raises(RegistryError, match="cannot"):
            Registry.from_settings().versions()
    finally:
        get_settings.cache_clear()


def test_a_claimed_version_number_is_never_overwritten(registry: Registry, strong: Candidate) -> None:
    # Another writer has claimed v0001 (model written, metadata not yet): it stays unlisted and untouched.
    claimed = f"{registry.root}/versions/v0001/{MODEL_FILE}"
    registry.store.create(claimed, b"other writer")
    with pytest.raises(FileExistsError):
        registry.store.create(claimed, b"again")
    assert registry.versions() == []
    assert strong.register(registry) == "v0002"
    assert registry.store.read(claimed) == b"other writer"
    assert registry.versions() == ["v0002"]


def test_a_stale_listing_still_gets_a_fresh_version_number(tmp_path: Path, strong: Candidate,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry(str(tmp_path))
    assert strong.register(reg) == "v0001"
    monkeypatch.setattr(reg.store, "children", lambda path: [])  # as if a concurrent writer was not seen yet
    assert strong.register(reg) == "v0002"
    monkeypatch.undo()
    assert reg.versions() == ["v0001", "v0002"]


def test_forced_promotion_records_a_skipped_comparison_when_holdouts_differ(tmp_path: Path, strong: Candidate,
                                                                            weak: Candidate) -> None:
    reg = Registry(str(tmp_path / "forced"))
    first = reg.register(weak.model_bytes, weak.metadata)
    reg.promote(first)
    other = dict(strong.metadata)
    other["holdout"] = {**(other.get("holdout") or {}), "id": "another-holdout"}
    second = reg.register(strong.model_bytes, other)
    with pytest.raises(PromotionRefused):
        reg.promote(second)
    pointer = reg.promote(second, force=True)
    assert reg.champion()["version"] == second and "skipped" in pointer["comparison"]


def stored_model(registry: Registry, version: str) -> bytes:
    """The version's model.onnx as the store holds it."""
    return registry.store.read(version_path(registry.root, version, MODEL_FILE))


def stored_pointer(registry: Registry) -> dict:
    """champion.json as the store holds it."""
    return json.loads(registry.store.read(f"{registry.root}/{CHAMPION_FILE}"))


def replace_model_file(registry: Registry, version: str, data: bytes) -> None:
    """Change a registered version's model.onnx in storage, as someone with write access to the bucket could."""
    registry.store.write(version_path(registry.root, version, MODEL_FILE), data)


def strip_digests(registry: Registry, version: str) -> None:
    """Rewrite a version's metadata.json as the writer wrote it before digests were recorded."""
    meta = registry.metadata(version)
    for key in (MODEL_SHA256, MODEL_SIZE):
        meta.pop(key)
    registry.store.write(version_path(registry.root, version, METADATA_FILE), json.dumps(meta).encode())


def test_register_records_the_model_digest_and_size(registry: Registry, strong: Candidate) -> None:
    version = strong.register(registry)
    meta = registry.metadata(version)
    stored = stored_model(registry, version)
    assert meta[MODEL_SHA256] == model_digest(stored) == model_digest(strong.model_bytes)
    assert meta[MODEL_SIZE] == len(stored) and len(meta[MODEL_SHA256]) == 64
    copied = registry.register(b"".join([strong.model_bytes]), {**meta, MODEL_SHA256: "0" * 64, MODEL_SIZE: 1})
    assert registry.metadata(copied)[MODEL_SHA256] == meta[MODEL_SHA256]  # always computed, never copied
    assert [r["model_sha256"] for r in registry.list_versions()] == [meta[MODEL_SHA256]] * 2


def test_promote_forced_promote_and_rollback_write_the_digest_of_the_version_they_point_at(
        registry: Registry, strong: Candidate, weak: Candidate) -> None:
    w, s = weak.register(registry), strong.register(registry)
    digest = {v: model_digest(stored_model(registry, v)) for v in (w, s)}
    assert digest[w] != digest[s]
    size = {v: len(stored_model(registry, v)) for v in (w, s)}

    def points_at(pointer: dict, version: str) -> bool:
        """The pointer returned and the one stored name ``version`` with its file's digest and size."""
        stored = stored_pointer(registry)
        return (pointer["version"] == stored["version"] == version
                and pointer[MODEL_SHA256] == stored[MODEL_SHA256] == digest[version]
                and pointer[MODEL_SIZE] == stored[MODEL_SIZE] == size[version])

    assert points_at(registry.promote(w), w)
    assert points_at(registry.promote(s, force=True, margin=1.0), s)  # forced past a margin it cannot meet
    assert points_at(registry.rollback(), w)
    assert stored_pointer(registry)["rolled_back_from"] == s


def test_a_model_file_changed_after_registration_is_neither_promoted_nor_rolled_back_to_nor_loaded(
        registry: Registry, strong: Candidate, weak: Candidate) -> None:
    w, s = weak.register(registry), strong.register(registry)
    registry.promote(w)
    replace_model_file(registry, s, weak.model_bytes)  # a valid model, but not the one registered as s
    expected = f"{s}: digest mismatch: expected {model_digest(strong.model_bytes)}, got {model_digest(weak.model_bytes)}"
    with pytest.raises(PromotionRefused, match=f"{expected}.*register the model again as a new version"):
        registry.promote(s, force=True)
    with pytest.raises(RegistryError, match=expected):
        registry.load(s)
    assert stored_pointer(registry)["version"] == w
    replace_model_file(registry, s, strong.model_bytes)  # restored: promotable again
    registry.promote(s, force=True)
    replace_model_file(registry, w, strong.model_bytes)
    with pytest.raises(PromotionRefused, match=f"{w}: digest mismatch"):
        registry.rollback()
    assert stored_pointer(registry)["version"] == s
    replace_model_file(registry, s, weak.model_bytes)
    with pytest.raises(RegistryError, match=f"{s}: digest mismatch"):  # the champion is checked against the pointer
        registry.load()


def test_a_version_registered_before_digests_is_pinned_by_promote_and_rollback(tmp_path: Path, strong: Candidate,
                                                                               weak: Candidate) -> None:
    reg = Registry(str(tmp_path / "old"))
    w, s = weak.register(reg), strong.register(reg)
    strip_digests(reg, w)
    strip_digests(reg, s)
    assert MODEL_SHA256 not in reg.metadata(w) and reg.load(w)[0] == weak.model_bytes  # loads, unchecked
    assert reg.promote(w)[MODEL_SHA256] == model_digest(weak.model_bytes)
    assert reg.promote(s, force=True)[MODEL_SHA256] == model_digest(strong.model_bytes)
    assert reg.rollback()[MODEL_SHA256] == model_digest(weak.model_bytes)
    replace_model_file(reg, w, strong.model_bytes)  # the pointer pinned w's file as it was when rolled back to
    with pytest.raises(RegistryError, match=f"{w}: digest mismatch"):
        reg.load()


def test_promote_refuses_a_model_over_the_scoring_jobs_size_cap(tmp_path: Path, strong: Candidate) -> None:
    reg = Registry(str(tmp_path))
    version = strong.register(reg)
    size = len(strong.model_bytes)
    with pytest.raises(PromotionRefused, match=f"{version}: model.onnx is {size} bytes, over model.max_model_bytes "
                                               f"\\({size - 1}\\)"):
        reg.promote(version, force=True, max_model_bytes=size - 1)
    assert reg.champion() is None
    assert reg.promote(version, max_model_bytes=size)[MODEL_SIZE] == size
