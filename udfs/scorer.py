"""The stream's champion-model scorer: onnxruntime, model validation, reason codes, hot reload, last good model,
and the shadow challengers.

A model file is trusted only when its SHA-256 is the one the registry recorded (the champion pointer's or the
challengers pointer's entry, else the version's metadata.json) and it is no larger than the size cap;
docs/REGISTRY.md, "Loading and validation".
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd

from contracts.features import feature_schema_hash
from contracts.registry_layout import (
    CHALLENGERS_FILE, CHAMPION_FILE, CHAMPION_HISTORY_FILE, DEFAULT_MAX_MODEL_BYTES, MAX_CHALLENGERS, METADATA_FILE,
    MODEL_FILE, MODEL_SHA256, MODEL_SIZE, ONNX_INPUT, ONNX_META_FEATURES, ONNX_PROBABILITIES, model_digest,
)
from udfs.registry_reader import (
    ObjectNotFound, ObjectTooLarge, RegistryReader, RegistryReadError, S3Endpoint, earlier_champions,
)

MIN_IMPACT = 1e-6  # probability drops below this are float noise, never a reason
MAX_BATCH_ROWS = 65536  # rows per onnxruntime call (bounds memory of the reason-code batch)
_logger = logging.getLogger(__name__)


class ModelRejected(ValueError):
    """A registry version that cannot be loaded or does not fit the stream's feature columns."""


_LOAD_ERRORS = (ModelRejected, RegistryReadError, ValueError)  # what loading a version can fail with


@dataclass(frozen=True)
class LoadedModel:
    """One validated model version, ready to score."""

    version: str
    feature_names: tuple[str, ...]
    reference: np.ndarray  # float32 [k], metadata feature_reference in feature_names order
    columns: np.ndarray  # int [k], position of each model feature among the stream's feature columns
    session: ort.InferenceSession

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(default) (float64) for a float32 [n, k] matrix in the model's feature order."""
        return predict_proba(self.session, X)


def onnx_session(model_bytes: bytes) -> ort.InferenceSession:
    """A one-thread CPU session: every Flink slot runs its own Python worker, and they share the cores."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def predict_proba(session: ort.InferenceSession, X: np.ndarray) -> np.ndarray:
    """P(default) (float64) from the registry's ONNX signature for float rows ``X``."""
    out = np.empty(len(X), dtype=np.float64)
    for start in range(0, len(X), MAX_BATCH_ROWS):
        chunk = np.ascontiguousarray(X[start:start + MAX_BATCH_ROWS], dtype=np.float32)
        out[start:start + len(chunk)] = session.run([ONNX_PROBABILITIES], {ONNX_INPUT: chunk})[0][:, 1]
    return out


def _names_diff(a: Sequence[str], b: Sequence[str]) -> str:
    """What separates two feature lists, for an error message."""
    only_a, only_b = [n for n in a if n not in b], [n for n in b if n not in a]
    if not only_a and not only_b:
        return "same features in a different order"
    return f"only in ONNX: {', '.join(only_a) or '-'}; only in metadata.json: {', '.join(only_b) or '-'}"


def _feature_list(metadata: Mapping[str, Any], version: str) -> list[str]:
    """metadata.json's feature_names, checked against its schema hash."""
    names = metadata.get("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ModelRejected(f"{version}: metadata.json has no feature_names list")
    if len(set(names)) != len(names):
        raise ModelRejected(f"{version}: metadata.json feature_names repeats a feature")
    declared = metadata.get("feature_schema_hash")
    if declared is not None and declared != feature_schema_hash(names):
        raise ModelRejected(f"{version}: feature_schema_hash {declared} does not match feature_names")
    return names


def _reference(metadata: Mapping[str, Any], names: Sequence[str], version: str) -> np.ndarray:
    """The feature_reference values (finite floats) in ``names`` order."""
    ref = metadata.get("feature_reference")
    if not isinstance(ref, Mapping):
        raise ModelRejected(f"{version}: metadata.json has no feature_reference")
    missing = [n for n in names if n not in ref]
    if missing:
        raise ModelRejected(f"{version}: feature_reference lacks {', '.join(missing)}")
    try:
        values = [float(ref[n]) for n in names]
    except (TypeError, ValueError):
        raise ModelRejected(f"{version}: feature_reference has non-numeric values") from None
    if not all(math.isfinite(v) for v in values):
        raise ModelRejected(f"{version}: feature_reference has non-finite values")
    return np.asarray(values, dtype=np.float32)


def _session(model_bytes: bytes, version: str) -> ort.InferenceSession:
    """The version's session (ModelRejected when the bytes are no loadable model)."""
    try:
        return onnx_session(model_bytes)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises several private exception types
        raise ModelRejected(f"{version}: model.onnx does not load: {type(exc).__name__}: {str(exc)[:200]}") from None


def _check_signature(sess: ort.InferenceSession, k: int, version: str) -> None:
    """Input float [N, k] named ONNX_INPUT; output ONNX_PROBABILITIES [N, 2]."""
    inputs = sess.get_inputs()
    if len(inputs) != 1 or inputs[0].name != ONNX_INPUT:
        raise ModelRejected(f"{version}: ONNX inputs {[i.name for i in inputs]}, expected [{ONNX_INPUT}]")
    inp = inputs[0]
    if inp.type != "tensor(float)" or len(inp.shape) != 2 or inp.shape[1] != k or isinstance(inp.shape[0], int):
        raise ModelRejected(f"{version}: ONNX input {inp.name} is {inp.type} {inp.shape}, expected "
                            f"tensor(float) [N, {k}] for its {k} features")
    outputs = {o.name: o for o in sess.get_outputs()}
    out = outputs.get(ONNX_PROBABILITIES)
    if out is None:
        raise ModelRejected(f"{version}: ONNX outputs {list(outputs)} lack {ONNX_PROBABILITIES}")
    shape = list(out.shape)
    wrong_width = len(shape) == 2 and isinstance(shape[1], int) and shape[1] != 2
    if out.type not in ("tensor(float)", "tensor(double)") or len(shape) != 2 or wrong_width:
        raise ModelRejected(f"{version}: ONNX output {out.name} is {out.type} {out.shape}, expected [N, 2]")


@dataclass(frozen=True)
class ModelRecord:
    """What the registry recorded about a version's model file, and where (champion.json or metadata.json)."""

    sha256: str
    size: int | None
    source: str


def recorded_model(pointer: Mapping[str, Any] | None, metadata: Any,
                   pointer_file: str = CHAMPION_FILE) -> ModelRecord | None:
    """The record a version's model file must match: the pointer's (``pointer_file``: the champion pointer, or a
    challenger's entry) when it names the version, else the version's metadata.json; None for a version
    registered (and promoted) before digests were recorded."""
    for doc, source in ((pointer, pointer_file), (metadata, METADATA_FILE)):
        if isinstance(doc, Mapping) and doc.get(MODEL_SHA256) is not None:
            size = doc.get(MODEL_SIZE)
            return ModelRecord(str(doc[MODEL_SHA256]).lower(),
                               size if isinstance(size, int) and not isinstance(size, bool) else None, source)
    return None


def check_digest(version: str, model_bytes: bytes, record: ModelRecord) -> None:
    """ModelRejected unless ``model_bytes`` hash to the recorded SHA-256."""
    actual = model_digest(model_bytes)
    if actual != record.sha256:
        sizes = f"; {record.size} bytes recorded, {len(model_bytes)} read" if record.size != len(model_bytes) else ""
        raise ModelRejected(f"{version}: digest mismatch: expected {record.sha256}, got {actual} (SHA-256 of "
                            f"{MODEL_FILE}, expected as recorded in {record.source}{sizes})")


def parse_metadata(version: str, metadata_bytes: bytes) -> Any:
    """metadata.json's content (ModelRejected when it is not JSON)."""
    try:
        return json.loads(metadata_bytes)
    except ValueError as exc:
        raise ModelRejected(f"{version}: metadata.json is not JSON: {exc}") from None


def load_model(version: str, model_bytes: bytes, metadata_bytes: bytes,
               feature_columns: Sequence[str]) -> LoadedModel:
    """Validate a version's files against the stream's columns and open it (ModelRejected when unfit)."""
    metadata = parse_metadata(version, metadata_bytes)
    return open_model(version, model_bytes, metadata, feature_columns)


def open_model(version: str, model_bytes: bytes, metadata: Any, feature_columns: Sequence[str]) -> LoadedModel:
    """Validate a model and its parsed metadata against ``feature_columns`` and open it (ModelRejected when unfit).

    The one loading path of both scorers: the stream's (here) and the batch one (models/score.py).
    """
    if not isinstance(metadata, dict):
        raise ModelRejected(f"{version}: metadata.json is not an object")
    if metadata.get("version") not in (None, version):
        raise ModelRejected(f"{version}: metadata.json says version {metadata.get('version')}")
    names = _feature_list(metadata, version)
    missing = [n for n in names if n not in feature_columns]
    if missing:
        raise ModelRejected(f"{version}: the model needs features the stream does not provide: {', '.join(missing)}")
    reference = _reference(metadata, names, version)
    sess = _session(model_bytes, version)
    raw = sess.get_modelmeta().custom_metadata_map.get(ONNX_META_FEATURES)
    try:
        embedded = json.loads(raw) if raw is not None else None
    except ValueError:
        embedded = None
    if not isinstance(embedded, list):
        raise ModelRejected(f"{version}: ONNX metadata_props has no JSON list {ONNX_META_FEATURES!r}")
    if embedded != names:
        raise ModelRejected(f"{version}: ONNX feature_names differ from metadata.json ({_names_diff(embedded, names)})")
    _check_signature(sess, len(names), version)
    cols = list(feature_columns)
    model = LoadedModel(version=version, feature_names=tuple(names), reference=reference,
                        columns=np.asarray([cols.index(n) for n in names], dtype=np.intp), session=sess)
    try:
        probe = sess.run([ONNX_PROBABILITIES], {ONNX_INPUT: reference[np.newaxis, :]})[0]
    except Exception as exc:  # noqa: BLE001 - any failure rejects the model
        raise ModelRejected(f"{version}: the model fails on its reference row: {type(exc).__name__}: "
                            f"{str(exc)[:200]}") from None
    if np.shape(probe) != (1, 2) or not np.all(np.isfinite(probe)) or not (-1e-6 <= float(probe[0, 1]) <= 1 + 1e-6):
        raise ModelRejected(f"{version}: the model's output on its reference row is {np.asarray(probe).tolist()}, "
                            "expected one row of two probabilities")
    return model


def impacts(model: LoadedModel, X: np.ndarray, p: np.ndarray) -> np.ndarray:
    """An [n, k] array: how far each row's probability ``p`` drops when one feature is set to its reference.

    ``impact_j = p(x) - p(x with x_j := reference_j)``, the reference being the training mean stored as
    ``feature_reference``; all k perturbed copies go through the model in one batch.
    """
    X = np.asarray(X, dtype=np.float32)
    n, k = X.shape
    batch = np.repeat(X[np.newaxis, :, :], k, axis=0)  # [k, n, k]: copy j has feature j at its reference
    for j in range(k):
        batch[j, :, j] = model.reference[j]
    perturbed = model.predict(batch.reshape(k * n, k)).reshape(k, n)
    return (np.asarray(p, dtype=np.float64)[np.newaxis, :] - perturbed).T


def top_reasons(model: LoadedModel, X: np.ndarray, p: np.ndarray, top: int) -> list[list[tuple[str, float]]]:
    """Per row of ``X`` (probabilities ``p``): up to ``top`` (feature, impact) pairs above MIN_IMPACT, largest first."""
    if len(X) == 0 or top <= 0:
        return [[] for _ in range(len(X))]
    drop = impacts(model, X, p)
    order = np.argsort(-drop, axis=1, kind="stable")[:, :top]
    names = model.feature_names
    return [[(names[j], float(row[j])) for j in idx if row[j] > MIN_IMPACT] for row, idx in zip(drop, order)]


def reason_codes(model: LoadedModel, X: np.ndarray, p: np.ndarray, top: int) -> list[str]:
    """The stream's reason codes: per row, the top features' names, comma-separated."""
    return [",".join(name for name, _ in row) for row in top_reasons(model, X, p, top)]


class Scorer:
    """Scores frames with the registry's champion and swaps in a new champion at most every poll interval.

    A worker that cannot load the champion starts on the newest earlier champion that loads; with none
    it returns NULL scores and tries again at every poll (docs/REGISTRY.md, "Starting without the champion").

    With ``shadow``, the same polls also follow the challengers pointer: :meth:`challenger_scores` gives each
    loaded challenger's probability for the same rows. A challenger that cannot be loaded is left out (and
    counted); it never changes what the champion scores.
    """

    def __init__(self, registry_uri: str, feature_columns: Sequence[str], *,
                 s3: Mapping[str, Any] | S3Endpoint | None = None, poll_interval_s: float = 10.0,
                 alert_threshold: float = 0.5, top_reasons: int = 3, clock: Callable[[], float] = time.monotonic,
                 log: Callable[[str], None] | None = None, timeout_s: float = 10.0,
                 poll_on_score: bool = True, max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
                 shadow: bool = False) -> None:
        self.feature_columns = list(feature_columns)
        if len(set(self.feature_columns)) != len(self.feature_columns):
            raise ValueError("feature_columns repeats a name")
        self.poll_interval_s = float(poll_interval_s)
        self.alert_threshold = float(alert_threshold)
        self.top_reasons = int(top_reasons)
        # False: scoring never reads the registry; the owner calls poll_if_due from a thread of its own, so a slow
        # registry delays no score (scoring reads the current model once per call, so the swap is safe).
        self.poll_on_score = poll_on_score
        self._clock = clock
        self._log = log
        # A model file is read up to this many bytes; a larger one is refused unread past it.
        self.max_model_bytes = int(max_model_bytes)
        self._reader = RegistryReader(registry_uri, s3=s3, timeout_s=timeout_s, max_model_bytes=self.max_model_bytes)
        self.model_load_failures = 0
        self.registry_poll_failures = 0
        self.model_unavailable_rows = 0
        self.model_loads = 0
        self.last_reload_error: str | None = None
        self._rejected: str | None = None  # a version refused for good (not retried until the pointer moves)
        # Versions refused for good while no model is loaded, with the reason: their files never change.
        self._refused: dict[str, str] = {}
        self._no_model_message: str | None = None
        self._unverified: set[str] = set()  # versions loaded without a recorded digest (warned about once)
        self._model: LoadedModel | None = None
        self.shadow = shadow
        self.challenger_load_failures = 0
        self._challengers: dict[str, LoadedModel] = {}  # in the pointer's order
        # Challenger versions refused for good, by (version, recorded digest): the same files fail again.
        self._challenger_refused: dict[tuple[str, str | None], str] = {}
        self._start()
        if shadow:
            self._poll_challengers()
        self._next_poll = self._clock() + self.poll_interval_s

    @property
    def model_version(self) -> str | None:
        """The version being scored with (None while no version loads)."""
        return None if self._model is None else self._model.version

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The current model's features, in its order (empty while no version loads)."""
        return () if self._model is None else self._model.feature_names

    def _load(self, version: str, pointer: Mapping[str, Any] | None = None,
              pointer_file: str = CHAMPION_FILE) -> LoadedModel:
        """Fetch, verify and validate ``version``; ``pointer`` is the champion pointer (or the challenger's entry in
        ``pointer_file``) when it names ``version``.

        The model file must be no larger than ``max_model_bytes`` and have the SHA-256 recorded in the pointer
        (else in the version's metadata.json); either failure is a ModelRejected, like a corrupt model. A version
        with no recorded digest (registered before digests) loads unverified, with a warning once per version.
        """
        metadata = parse_metadata(version, self._reader.version_file(version, METADATA_FILE))
        record = recorded_model(pointer, metadata, pointer_file)
        if record is not None and record.size is not None and record.size > self.max_model_bytes:
            raise ModelRejected(f"{version}: {MODEL_FILE} is {record.size} bytes as recorded in {record.source}, over "
                                f"the size cap model.max_model_bytes ({self.max_model_bytes} bytes); not downloaded")
        try:
            model_bytes = self._reader.version_file(version, MODEL_FILE)
        except ObjectTooLarge as exc:  # the file does not change: refused until the pointer moves
            raise ModelRejected(f"{version}: {MODEL_FILE} is over the size cap model.max_model_bytes "
                                f"({self.max_model_bytes} bytes): {exc.told}; not read further") from None
        if record is not None:
            check_digest(version, model_bytes, record)  # before onnxruntime parses a single byte of it
        model = open_model(version, model_bytes, metadata, self.feature_columns)
        if record is None and version not in self._unverified:
            self._unverified.add(version)
            self._emit(f"{version} loaded without a digest check: neither {CHAMPION_FILE} nor its {METADATA_FILE} "
                       f"records {MODEL_SHA256} (registered before model digests; promoting or rolling back to it "
                       "records one)", True)
        self.model_loads += 1
        return model

    def _emit(self, message: str, failure: bool) -> None:
        """One log line."""
        if self._log is not None:
            self._log(message)
        elif failure:
            _logger.warning(message)
        else:
            _logger.info(message)

    def _candidates(self) -> tuple[dict[str, Any] | None, list[str], str | None]:
        """(champion pointer, versions to try in order, pointer error): the champion, then earlier champions newest
        first.

        Without a readable pointer, the champion history stands in for it (its last entry is normally the
        champion itself; every version's digest then comes from its metadata.json).
        """
        try:
            pointer = self._reader.champion()
        except (RegistryReadError, ValueError) as exc:
            self.registry_poll_failures += 1
            try:
                history = self._reader.champion_history()
            except (RegistryReadError, ValueError) as history_exc:
                return None, [], f"champion pointer: {exc}; champion history: {history_exc}"
            return None, list(dict.fromkeys(reversed(history))), f"champion pointer: {exc}"
        champion = str(pointer["version"])
        return pointer, list(dict.fromkeys([champion, *reversed(earlier_champions(pointer))])), None

    def _start(self) -> bool:
        """Load the champion, else the newest earlier champion that loads; True when a model is loaded.

        Runs when the worker starts and at every poll while no model is loaded.
        """
        pointer, versions, pointer_error = self._candidates()
        champion = None if pointer is None else str(pointer["version"])
        untried = [v for v in versions if v not in self._refused]
        if pointer_error is None and not untried:
            return False  # only versions already refused and logged
        failed: dict[str, str] = {}
        for version in untried:
            try:
                model = self._load(version, pointer if version == champion else None)
            except _LOAD_ERRORS as exc:
                self.model_load_failures += 1
                failed[version] = str(exc)
                if isinstance(exc, ModelRejected):
                    self._refused[version] = str(exc)
                continue
            self._started(model, champion, pointer_error, failed)
            return True
        reasons = [r for r in (pointer_error, *failed.values()) if r]
        skipped = [v for v in versions if v in self._refused and v not in failed]
        if skipped:
            reasons.append(f"refused earlier: {', '.join(skipped)}")
        self.last_reload_error = "; ".join(reasons)
        message = f"no model to score with, rows get NULL scores until a champion loads: {self.last_reload_error}"
        if message != self._no_model_message:  # the same state is logged once, not at every poll
            self._emit(message, True)
            self._no_model_message = message
        return False

    def _started(self, model: LoadedModel, champion: str | None, pointer_error: str | None,
                 failed: Mapping[str, str]) -> None:
        """Score with ``model`` from now on and log how it was chosen."""
        had_no_model = self._no_model_message is not None
        self._model, self._no_model_message = model, None
        self._rejected = champion if champion in self._refused else None  # the hot reload skips it too
        others = "".join(f"; earlier champion {v} not loaded either: {r}" for v, r in failed.items() if v != champion)
        if pointer_error is not None:
            self.last_reload_error = pointer_error
            self._emit(f"champion pointer not readable, scoring with {model.version} from "
                       f"{CHAMPION_HISTORY_FILE} instead: {pointer_error}{others}", True)
        elif model.version != champion:
            self.last_reload_error = failed.get(champion) or self._refused.get(champion, "")  # type: ignore[arg-type]
            self._emit(f"champion {champion} not loaded, scoring with earlier champion {model.version} instead: "
                       f"{self.last_reload_error}{others}", True)
        else:
            self.last_reload_error = None
            if had_no_model:
                self._emit(f"champion {model.version} loaded (was no model)", False)

    @property
    def challenger_versions(self) -> tuple[str, ...]:
        """The challengers being scored with, in the pointer's order."""
        return tuple(self._challengers)

    def poll(self) -> bool:
        """Re-read the champion pointer (and, in shadow mode, the challengers pointer) now; load and swap in a new
        champion. True when the champion changed."""
        self._next_poll = self._clock() + self.poll_interval_s
        changed = self._poll_champion()
        if self.shadow:
            self._poll_challengers()
        return changed

    def _poll_challengers(self) -> None:
        """Follow the challengers pointer: load the challengers added, drop those removed.

        No pointer means no challengers; an unreadable one keeps the challengers loaded. The champion is never
        also scored as a challenger.
        """
        try:
            entries = self._reader.challengers()
        except ObjectNotFound:
            entries = []
        except (RegistryReadError, ValueError) as exc:
            self.registry_poll_failures += 1
            self._emit(f"challengers pointer not readable, keeping challengers {list(self._challengers)}: {exc}", True)
            return
        wanted: dict[str, dict[str, Any]] = {}
        for entry in entries:
            version = str(entry["version"])
            if version != self.model_version and version not in wanted and len(wanted) < MAX_CHALLENGERS:
                wanted[version] = entry
        loaded: dict[str, LoadedModel] = {}
        for version, entry in wanted.items():
            key = (version, entry.get(MODEL_SHA256))
            if version in self._challengers:
                loaded[version] = self._challengers[version]
                continue
            if key in self._challenger_refused:
                continue
            try:
                loaded[version] = self._load(version, entry, CHALLENGERS_FILE)
            except _LOAD_ERRORS as exc:
                self.challenger_load_failures += 1
                if isinstance(exc, ModelRejected):
                    self._challenger_refused[key] = str(exc)
                self._emit(f"challenger {version} not loaded, not scored in shadow: {exc}", True)
                continue
            self._emit(f"challenger {version} loaded: scored in shadow beside champion {self.model_version}", False)
        for version in self._challengers.keys() - loaded.keys():
            self._emit(f"challenger {version} no longer scored in shadow", False)
        self._challengers = loaded

    def _poll_champion(self) -> bool:
        """Re-read the champion pointer; load and swap in a new champion. True when the model changed."""
        if self._model is None:
            return self._start()
        try:
            pointer = self._reader.champion()
        except (RegistryReadError, ValueError) as exc:
            self.registry_poll_failures += 1
            self.last_reload_error = f"champion pointer: {exc}"
            self._emit(f"model registry poll failed, still scoring with {self.model_version}: {exc}", True)
            return False
        version = str(pointer["version"])
        if version == self._model.version:  # nothing pending: earlier errors are over
            self._rejected, self.last_reload_error = None, None
            return False
        if version == self._rejected:
            return False
        try:
            model = self._load(version, pointer)
        except _LOAD_ERRORS as exc:
            self.model_load_failures += 1
            self.last_reload_error = str(exc)
            if isinstance(exc, ModelRejected):
                self._rejected = version  # the same files would fail again; registry errors are retried
            self._emit(f"champion {version} not loaded, still scoring with {self.model_version}: {exc}", True)
            return False
        previous, self._model, self._rejected, self.last_reload_error = self._model.version, model, None, None
        self._emit(f"champion {version} loaded (was {previous})", False)
        return True

    def poll_if_due(self) -> None:
        """Poll when the interval has passed (every scoring call does this first unless ``poll_on_score`` is off)."""
        if self._clock() >= self._next_poll:
            self.poll()

    def score_matrix(self, values: np.ndarray) -> tuple[np.ndarray, str | None, list[str | None]]:
        """(P(default), model version, reason codes) for rows of all ``feature_columns`` in that order (NaN = null)."""
        if self.poll_on_score:
            self.poll_if_due()
        model = self._model
        X = np.asarray(values, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_columns):
            raise ValueError(f"expected [n, {len(self.feature_columns)}] values, got shape {X.shape}")
        if model is None:
            return self._unscored(len(X))
        return self._score(model, X[:, model.columns])

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """probability (float64), model_version and reason_codes per row, the model's columns picked by name."""
        if self.poll_on_score:
            self.poll_if_due()
        model = self._model
        if model is None:
            p, version, reasons = self._unscored(len(frame))
        else:
            missing = [n for n in model.feature_names if n not in frame.columns]
            if missing:
                raise KeyError(f"model {model.version} needs columns the frame lacks: {', '.join(missing)}")
            X = frame[list(model.feature_names)].to_numpy(dtype=np.float64, na_value=np.nan)
            p, version, reasons = self._score(model, X)
        return pd.DataFrame({"probability": p, "model_version": [version] * len(p), "reason_codes": reasons})

    def challenger_scores(self, values: np.ndarray) -> list[list[tuple[str, float]]]:
        """Per row of ``values`` (all ``feature_columns``, NaN = null): (version, P(default)) of each challenger.

        Called after :meth:`score_matrix` on the same rows (which polls when due); nulls take each challenger's
        reference value, as the champion's do.
        """
        X = np.asarray(values, dtype=np.float64)
        out: list[list[tuple[str, float]]] = [[] for _ in range(len(X))]
        for model in list(self._challengers.values()):
            cols = X[:, model.columns]
            p = model.predict(np.where(np.isnan(cols), model.reference.astype(np.float64), cols).astype(np.float32))
            for row, value in zip(out, p.tolist()):
                row.append((model.version, value))
        return out

    def _unscored(self, n: int) -> tuple[np.ndarray, None, list[str | None]]:
        """n rows without a model: NaN probability (NULL in Flink), no version, no reason codes."""
        self.model_unavailable_rows += n
        return np.full(n, np.nan), None, [None] * n

    def _score(self, model: LoadedModel, X: np.ndarray) -> tuple[np.ndarray, str, list[str | None]]:
        """Score a float64 [n, k] matrix in the model's order; nulls take the reference value."""
        X32 = np.where(np.isnan(X), model.reference.astype(np.float64), X).astype(np.float32)
        p = model.predict(X32)
        reasons: list[str | None] = [""] * len(p)
        alert = np.flatnonzero(p >= self.alert_threshold)
        if len(alert):
            for i, codes in zip(alert, reason_codes(model, X32[alert], p[alert], self.top_reasons)):
                reasons[i] = codes
        return p, model.version, reasons


# The scorer's parameters by name, with their defaults: the job passes them as Flink job parameters
# (jobs/params.py ``scorer_parameters``), the scoring API takes the same mapping from the same builder.
SCORER_PARAMETERS: dict[str, str] = {
    "model.registry_uri": "",
    "model.poll_interval_s": "10.0",
    "model.alert_threshold": "0.5",
    "model.max_model_bytes": str(DEFAULT_MAX_MODEL_BYTES),
    "s3.endpoint": "",
    "s3.region": "us-east-1",
    "s3.access_key_id": "",
    "s3.secret_access_key": "",
    "s3.session_token": "",
}


def scorer_from_parameters(get: Callable[[str], Any], feature_columns: Sequence[str], **options: Any) -> Scorer:
    """A Scorer configured from ``get(name)`` for each of SCORER_PARAMETERS (None: the default); ``options``
    go to Scorer as they are (clock, poll_on_score). Raises ValueError naming a bad parameter, never because
    of a model."""
    def value(name: str) -> str:
        raw = get(name)
        return SCORER_PARAMETERS[name] if raw is None or str(raw) == "" else str(raw)

    def number(name: str) -> float:
        try:
            return float(value(name))
        except ValueError:
            raise ValueError(f"parameter {name} must be a number, got {value(name)!r}") from None

    size = value("model.max_model_bytes")
    if not size.strip().isdigit() or int(size) < 1:
        raise ValueError(f"parameter model.max_model_bytes must be a positive number of bytes, got {size!r}")
    uri = value("model.registry_uri")
    if not uri:
        raise ValueError("parameter model.registry_uri is not set (the job's pipeline.global-job-parameters)")
    s3 = None
    if uri.startswith("s3://"):
        s3 = {"endpoint": value("s3.endpoint"), "region": value("s3.region"),
              "access_key_id": value("s3.access_key_id"), "secret_access_key": value("s3.secret_access_key"),
              "session_token": value("s3.session_token")}
    return Scorer(uri, feature_columns, s3=s3, poll_interval_s=number("model.poll_interval_s"),
                  alert_threshold=number("model.alert_threshold"), max_model_bytes=int(size), **options)
