"""Unit-test support for the scoring API: an in-memory serving store, a recording publisher, a clock that moves
only when told, a real champion in a local registry, and generated applications.

The in-memory store stands in for PostgreSQL in the unit tier only (the real one, scoring_api/store.py, runs
on the stack); it keeps the same records and answers the same way, including being unreachable.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from contracts.feature_formulas import BEHAVIOUR_WINDOW_COLUMNS
from contracts.features import ATTRIBUTE_FEATURE_NAMES, FEATURE_NAMES, feature_schema_hash
from contracts.registry_layout import MODEL_FILE, version_path
from ingestion.generator import GeneratorConfig, generate
from loanrisk.settings import Settings, override
from models.export import check_parity, export_onnx
from models.registry import Registry
from scoring_api.app import Services, create_app
from scoring_api.champion import ChampionModel, scorer_from_settings
from scoring_api.inputs import scoring_input, window_keys
from scoring_api.keys import create_client_key
from scoring_api.store import Claim, StoredKey, StoreUnavailable, WindowKey, claim_from_record

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
WINDOW_MS = 30 * 86_400_000  # flink.behaviour_window_days, the default
UPKEEP_TICK_S = 0.02  # the app's upkeep thread checks the (fake) clock this often


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class _Idem:
    request_hash: str
    claim_id: str
    state: str
    created_at: float
    expires_at: float
    status_code: int | None = None
    response: str | None = None


class MemoryStore:
    """The serving store's records in dictionaries (unit tests only); ``down`` makes every call StoreUnavailable."""

    def __init__(self, clock: FakeClock, lookup_delay_s: float = 0.0) -> None:
        self.clock = clock
        self.windows: dict[WindowKey, dict[str, float]] = {}
        self._keys: dict[str, StoredKey] = {}
        self._idem: dict[tuple[str, str], _Idem] = {}
        self.down = False
        self.lookups = 0  # behaviour round trips
        self.lookups_done = 0  # those that have returned (after lookup_delay_s)
        self.lookup_delay_s = lookup_delay_s
        self._lock = threading.Lock()

    def _reachable(self) -> None:
        if self.down:
            raise StoreUnavailable("serving database memory unreachable: connection refused")

    def add_window(self, customer_id: str, as_of_ms: int, **values: float) -> dict[str, float]:
        row = {c: float(values.get(c, 0.0)) for c in BEHAVIOUR_WINDOW_COLUMNS}
        self.windows[(customer_id, as_of_ms)] = row
        return row

    def ping(self) -> None:
        self._reachable()

    def behaviour_windows(self, wanted: Sequence[WindowKey]) -> dict[WindowKey, dict[str, float]]:
        self._reachable()
        self.lookups += 1
        if self.lookup_delay_s:
            time.sleep(self.lookup_delay_s)
        self.lookups_done += 1
        return {k: dict(self.windows[k]) for k in wanted if k in self.windows}

    def key_by_id(self, key_id: str) -> StoredKey | None:
        self._reachable()
        return next((k for k in self._keys.values() if k.key_id == key_id), None)

    def add_key(self, client: str, key_id: str, key_salt: str, key_hash: str) -> bool:
        self._reachable()
        old = self._keys.get(client)
        if old is not None and old.revoked_at is None:
            return False
        self._keys[client] = StoredKey(client, key_id, key_salt, key_hash, NOW, None)
        return True

    def keys(self) -> list[StoredKey]:
        self._reachable()
        return [self._keys[c] for c in sorted(self._keys)]

    def revoke_key(self, client: str) -> bool:
        self._reachable()
        old = self._keys.get(client)
        if old is None or old.revoked_at is not None:
            return False
        self._keys[client] = replace(old, revoked_at=NOW)
        return True

    def claim(self, client: str, key: str, request_hash: str, claim_id: str, ttl_s: int, stale_s: float) -> Claim:
        self._reachable()
        now = self.clock()
        with self._lock:
            old = self._idem.get((client, key))
            if old is None or old.expires_at <= now or (old.state == "pending" and old.created_at <= now - stale_s):
                self._idem[(client, key)] = _Idem(request_hash, claim_id, "pending", now, now + ttl_s)
                return Claim("claimed", claim_id=claim_id)
            found = claim_from_record((old.request_hash, old.state, old.status_code, old.response), request_hash)
            assert found is not None
            return found

    def finish(self, client: str, key: str, claim_id: str, status_code: int, response: str) -> None:
        self._reachable()
        with self._lock:
            record = self._idem.get((client, key))
            if record is not None and record.claim_id == claim_id:
                record.state, record.status_code, record.response = "done", status_code, response

    def release(self, client: str, key: str, claim_id: str) -> None:
        self._reachable()
        with self._lock:
            record = self._idem.get((client, key))
            if record is not None and record.claim_id == claim_id:
                del self._idem[(client, key)]

    def purge_expired(self) -> int:
        self._reachable()
        with self._lock:
            expired = [k for k, r in self._idem.items() if r.expires_at <= self.clock()]
            for k in expired:
                del self._idem[k]
        return len(expired)


@dataclass
class RecordingPublisher:
    """Keeps every message it is handed, as delivered; ``failing`` refuses them all."""

    sent: list[tuple[str, str, bytes]] = field(default_factory=list)
    failing: bool = False

    def publish_many(self, topic: str, messages: Sequence[tuple[str, bytes]], timeout_s: float) -> list[str | None]:
        if self.failing:
            return ["loan-applications: Local: Message timed out"] * len(messages)
        self.sent += [(topic, key, value) for key, value in messages]
        return [None] * len(messages)

    def close(self) -> None:
        return None

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(value) for _, _, value in self.sent]


def generated_applications(customers: int = 40, seed: int = 11) -> list[dict[str, Any]]:
    """Contract-exact loan applications from the synthetic generator (the producer's own source)."""
    config = GeneratorConfig(seed=seed, customers=customers, history_months=0, observe_months=1, spend_txn_per_month=1)
    return [json.loads(m.value_bytes) for m in generate(config) if m.kind == "loan_application"]


@dataclass
class TrainedModel:
    """A fitted model on every feature column, and what the registry holds of it."""

    estimator: Any
    onnx: bytes
    metadata: dict[str, Any]

    def proba(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's P(default) on the float32 values the scorer feeds ONNX (rows of every feature column, or
        of the model's own)."""
        X = np.asarray(X, dtype=np.float32)
        names = self.metadata["feature_names"]
        if X.shape[1] != len(names):
            X = X[:, [FEATURE_NAMES.index(n) for n in names]]
        return self.estimator.predict_proba(X.astype(np.float64))[:, 1]


def behaviour_window_values(rng: np.random.Generator) -> dict[str, float]:
    """Plausible values of one customer_behaviour_windows row (columns of BEHAVIOUR_WINDOW_COLUMNS)."""
    return {"income_stability": rng.uniform(0, 1), "debit_minor_last": rng.uniform(0, 5e6),
            "balance_mean_minor_last": rng.uniform(-1e5, 1e7), "dpd_current": float(rng.integers(0, 40)),
            "dpd_max": float(rng.integers(0, 90)), "dpd_mean": rng.uniform(0, 30),
            "late_payments": float(rng.integers(0, 4)), "missed_payments": float(rng.integers(0, 3)),
            "behaviour_windows": float(rng.integers(1, 4))}


def train_model(seed: int, applications: Sequence[dict[str, Any]], n: int = 1200) -> TrainedModel:
    """A scaled logistic regression on rows like the applications' features (behaviour half absent, half drawn
    as :func:`behaviour_window_values`), labelled by a noisy random rule: probabilities spread over (0, 1)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        app = applications[int(rng.integers(len(applications)))]
        window = behaviour_window_values(rng) if rng.random() < 0.5 else None
        features = scoring_input(app, {} if window is None else {window_keys(app, WINDOW_MS)[0]: window}, WINDOW_MS)
        rows.append(features.row)
    # The generated applications carry no application attribute: the model takes every other feature.
    names = [n for n in FEATURE_NAMES if n not in ATTRIBUTE_FEATURE_NAMES]
    X = np.asarray(rows, dtype=np.float32).astype(np.float64)[:, [FEATURE_NAMES.index(n) for n in names]]
    X *= rng.lognormal(0, 0.1, X.shape)
    z = ((X - X.mean(0)) / (X.std(0) + 1e-9)) @ rng.normal(size=X.shape[1])
    y = (z + rng.normal(size=n) * 2 * z.std() > np.median(z)).astype(int)
    estimator = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000)).fit(X, y)
    onnx = export_onnx(estimator, names)
    metadata = {"feature_names": names, "feature_schema_hash": feature_schema_hash(names),
                "feature_reference": dict(zip(names, map(float, X.mean(0)))),
                "parity": check_parity(estimator, onnx, X), "metrics": {}, "family": "logistic_regression"}
    return TrainedModel(estimator, onnx, metadata)


def promote(registry: Registry, model: TrainedModel) -> str:
    """Register ``model`` in the platform's registry and make it champion (forced: no shared holdout)."""
    version = registry.register(model.onnx, model.metadata)
    registry.promote(version, force=True, margin=0.0)
    return version


def break_model_file(registry: Registry, version: str) -> None:
    """Damage a promoted version's model.onnx in storage (the registry writer never rewrites a version)."""
    registry.store.write(version_path(registry.root, version, MODEL_FILE), b"\x08\x07 not an ONNX model")


@dataclass
class Api:
    """A running app with its parts: the client, the settings, the registry, the store, the publisher, a key."""

    client: TestClient
    settings: Settings
    registry: Registry
    store: MemoryStore
    publisher: RecordingPublisher
    clock: FakeClock
    model: ChampionModel
    key: str

    def advance_to_poll(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` and give the upkeep thread time to poll the registry if due."""
        self.clock.advance(seconds)
        time.sleep(20 * UPKEEP_TICK_S)

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}", **extra}

    def score(self, application: Any, *, key: str | None = None, params: dict[str, Any] | None = None,
              **headers: str) -> Any:
        body = application if isinstance(application, (bytes, str)) else json.dumps(application)
        return self.client.post("/v1/score", content=body, params=params or {},
                                headers={**self.headers(key), "Content-Type": "application/json", **headers})

    def batch(self, applications: list[Any], params: dict[str, Any] | None = None, **headers: str) -> Any:
        return self.client.post("/v1/score:batch", content=json.dumps({"applications": applications}),
                                params=params or {}, headers={**self.headers(), **headers})


def api_settings(registry_root: Path, **api: Any) -> Settings:
    """Default settings with the registry in ``registry_root`` and some api settings replaced."""
    return override(Settings(), model={"registry_uri": str(registry_root), "poll_interval_s": 10.0}, api=api)


@contextmanager
def running_api(tmp_path: Path, model: TrainedModel, *, lookup_delay_s: float = 0.0,
                before_start: Callable[[Registry, str], None] | None = None, **api: Any) -> Iterator[Api]:
    """The app on a registry whose champion is ``model``, the in-memory store, a recording publisher, one key.

    ``before_start(registry, version)`` may change the registry before the app loads its model.
    """
    clock = FakeClock()
    settings = api_settings(tmp_path / "registry", **api)
    registry = Registry(str(tmp_path / "registry"))
    version = promote(registry, model)
    if before_start is not None:
        before_start(registry, version)
    store = MemoryStore(clock, lookup_delay_s)
    publisher = RecordingPublisher()
    champion = ChampionModel(scorer_from_settings(settings, clock=clock))
    services = Services(model=champion, store=store, publisher=publisher, clock=clock, wall_clock=lambda: NOW,
                        upkeep_tick_s=UPKEEP_TICK_S)
    key = create_client_key(store, "origination")
    with TestClient(create_app(settings, services)) as client:
        yield Api(client, settings, registry, store, publisher, clock, champion, key)
