"""Train -> export -> parity -> metadata: a registrable candidate, and evaluation of a registered version."""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version as pkg_version
from typing import Any

import numpy as np
import pandas as pd

from contracts.features import feature_schema_hash, risk_directions
from contracts.registry_layout import ONNX_INPUT, ONNX_PROBABILITIES
from models.compat import check_model
from models.dataset import TrainingSet, describe
from models.drift import score_reference
from models.errors import ModelError
from models.evaluate import (
    BASELINES, CALIBRATION_BINS, baseline_probabilities, binary_metrics, calibration_table, compare_on,
    lift_by_decile, permutation_importance,
)
from models.export import check_parity, export_onnx, onnx_proba, parity as parity_diff, session
from models.monotonic import check_record, dropped_features, monotonicity_check
from models.registry import Registry, code_version
from models.split import SplitPlan, cv_folds, holdout_id, latest_period, plan
from models.train import (
    CALIBRATION, CALIBRATIONS, CLASS_WEIGHTING, FAMILIES, TrainedModel, boosting_name, fit, fit_final,
)


def alert_threshold() -> float:
    """The operating threshold, settings.model.alert_threshold: the one the job alerts at, or a ConfigError."""
    from loanrisk.settings import get_settings
    return float(get_settings().model.alert_threshold)


def _versions() -> dict[str, str]:
    """Versions of the libraries that produced the model."""
    out = {"python": platform.python_version()}
    for name in ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy"):
        try:
            out[name] = pkg_version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


@dataclass
class Candidate:
    """A trained model, its ONNX bytes and the metadata it is registered with."""

    trained: TrainedModel
    model_bytes: bytes
    metadata: dict[str, Any]
    plan: SplitPlan
    holdout: TrainingSet | None

    def register(self, registry: Registry) -> str:
        """Register this candidate; returns the new version name."""
        return registry.register(self.model_bytes, self.metadata)


def compare_calibrations(train: TrainingSet, test: TrainingSet, family: str, params: dict[str, Any],
                         seed: int = 0, threshold: float = 0.5, monotonic: bool = False) -> dict[str, dict[str, Any]]:
    """Each calibration method of ``family``/``params``, fitted on ``train``, scored on ``test`` through ONNX.

    Same configuration, same rows, only the calibrator differs; the ONNX parity of each export is
    recorded next to its metrics, not enforced, so a method that would be refused still shows.
    """
    out: dict[str, dict[str, Any]] = {}
    for method in CALIBRATIONS:
        estimator = fit_final(train, family, params, seed, method, monotonic)
        model_bytes = export_onnx(estimator, train.feature_names)
        m = binary_metrics(test.label, onnx_proba(session(model_bytes), test.matrix()), threshold)
        out[method] = {**{k: m[k] for k in ("n", "positives", "roc_auc", "brier", "ece", "log_loss", "mean_p")},
                       "parity_max_abs_diff": parity_diff(estimator, model_bytes, test.matrix()),
                       "ece_bins": CALIBRATION_BINS, "trained_on": train.n}
    return out


def monotonic_record(trained: TrainedModel) -> dict[str, Any]:
    """Metadata: whether the model was trained under constraints, the directions declared for its features,
    and the features a sign-constrained logistic regression dropped."""
    directions = risk_directions(trained.feature_names)
    return {"constrained": trained.monotonic_cst is not None,
            "directions": {n: d for n, d in zip(trained.feature_names, directions, strict=True) if d},
            "dropped": dropped_features(trained.estimator, trained.feature_names)}


def check_monotonicity(model_bytes: bytes, names: list[str], X: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """The monotonicity check (models/monotonic.py) of an ONNX model on rows ``X`` (columns ``names``)."""
    sess = session(model_bytes)
    return monotonicity_check(lambda batch: onnx_proba(sess, batch), X, names, risk_directions(names), seed=seed)


def train_candidate(ts: TrainingSet, families: Sequence[str] = FAMILIES, budget: int | dict[str, int] = 6,
                    seed: int = 0, n_splits: int = 5, n_repeats: int = 2, hold_out: bool = True,
                    threshold: float | None = None, calibration: str = CALIBRATION,
                    compare_calibration: bool = False, monotonic: bool = False) -> Candidate:
    """Split, search, fit, export and check parity (on the holdout, else on the training rows).

    ``compare_calibration`` also fits the chosen configuration with every calibration method and records
    their holdout ECE and Brier (``calibration_comparison`` in the metadata); it needs a holdout.
    ``monotonic`` searches and fits under the features' declared directions. Either way the model's
    monotonicity is checked on the rows parity is checked on (``monotonicity_check`` in the metadata).
    """
    threshold = alert_threshold() if threshold is None else threshold
    sp = plan(ts, n_splits, n_repeats, seed, hold_out=hold_out)
    if compare_calibration and not sp.has_holdout:
        raise ModelError("comparing calibrations needs held-out rows: train with a holdout (a dated data set)")
    dev = ts.subset(sp.dev)
    trained = fit(dev, sp.folds, families, budget, seed, calibration, monotonic)
    model_bytes = export_onnx(trained.estimator, trained.feature_names)
    hold = ts.subset(sp.holdout) if sp.has_holdout else None
    checked = hold if hold is not None else dev
    parity = check_parity(trained.estimator, model_bytes, checked.matrix())
    metrics: dict[str, Any] = {"cv": {
        "roc_auc_mean": trained.search.cv_auc_mean, "roc_auc_std": trained.search.cv_auc_std,
        "folds": len(sp.folds),
        "best_per_family": {f: {"roc_auc_mean": t["auc_mean"], "roc_auc_std": t["auc_std"], "params": t["params"]}
                            for f, t in trained.search.best_per_family().items()}}}
    holdout_meta = None
    if hold is not None:
        p = onnx_proba(session(model_bytes), hold.matrix())
        metrics["holdout"] = compare_on(hold, p, baseline_probabilities(dev, hold), threshold)
        holdout_meta = {"id": holdout_id(hold), "period": sp.holdout_period, "rows": hold.n,
                        "positives": hold.positives, **{k: v for k, v in describe(hold).items()
                                                        if k in ("time_from", "time_to")}}
    meta = {
        "feature_names": trained.feature_names,
        "feature_schema_hash": feature_schema_hash(trained.feature_names),
        "feature_reference": trained.feature_reference,
        "family": trained.family,
        "estimator": boosting_name(trained.monotonic_cst is not None) if trained.family == "gradient_boosting"
        else trained.family,
        "params": trained.params,
        "calibration": trained.calibration,
        "class_weighting": CLASS_WEIGHTING[trained.family],
        "monotonic": monotonic_record(trained),
        "monotonicity_check": check_record(check_monotonicity(model_bytes, trained.feature_names, checked.matrix(),
                                                              seed)),
        "metrics": metrics,
        "holdout": holdout_meta,
        "training_data": describe(dev),
        "snapshot_ids": dict(ts.snapshot_ids),
        "parity": parity,
        "score_reference": score_reference(onnx_proba(session(model_bytes), dev.matrix())),
        "search": {"families": list(families), "budget": budget, "seed": seed, "trials": len(trained.search.trials),
                   "monotonic": monotonic,
                   "n_splits": n_splits, "n_repeats": 1 if sp.has_holdout else n_repeats,
                   "choice_rule": "one standard error between families (simplest first), then the family's best"},
        "alert_threshold": threshold,
        "onnx": {"input": ONNX_INPUT, "output": ONNX_PROBABILITIES, "default_column": 1},
        "code_version": code_version(),
        "library_versions": _versions(),
    }
    if compare_calibration and hold is not None:
        meta["calibration_comparison"] = compare_calibrations(dev, hold, trained.family, trained.params, seed,
                                                              threshold, monotonic)
    return Candidate(trained=trained, model_bytes=model_bytes, metadata=meta, plan=sp, holdout=hold)


def oof_baselines(ts: TrainingSet, n_splits: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Out-of-fold baseline probabilities for every row of ``ts`` (cross-fitted on ``ts`` itself)."""
    k = min(n_splits, ts.positives, ts.n - ts.positives)
    if k < 2:  # too few of a class to cross-fit anything but the prevalence
        return {"prevalence": np.full(ts.n, ts.prevalence)}
    out: dict[str, np.ndarray] = {}
    for tr, te in cv_folds(ts.label, k, 1, seed):
        for name, p in baseline_probabilities(ts.subset(tr), ts.subset(te)).items():
            out.setdefault(name, np.full(ts.n, np.nan))[te] = p
    if "prevalence" in out:  # one constant (the mean of the folds' training rates): ROC AUC exactly 0.5
        out["prevalence"] = np.full(ts.n, float(out["prevalence"].mean()))
    return {k: v for k, v in out.items() if k in BASELINES}


@dataclass
class Evaluation:
    """A registered model's metrics on a data set next to baselines, with tables for the report."""

    version: str
    rows: TrainingSet
    model_p: np.ndarray
    baselines: dict[str, np.ndarray]
    metrics: dict[str, dict[str, Any]]
    calibration: pd.DataFrame
    lift: pd.DataFrame
    importance: pd.DataFrame
    calibration_comparison: dict[str, dict[str, Any]] | None = None
    monotonicity: pd.DataFrame | None = None
    constrained: bool | None = None


def evaluate_version(model_bytes: bytes, metadata: dict[str, Any], ts: TrainingSet, hold_out: bool = True,
                     seed: int = 0, threshold: float | None = None, compare_calibration: bool = False) -> Evaluation:
    """Score ``ts`` (its latest period when it spans several) through ONNX and compare with baselines.

    ``compare_calibration`` refits the version's configuration with every calibration method on the
    periods before the evaluated one and scores the evaluated rows with each (ECE, Brier). The
    monotonicity check runs on the evaluated rows whether or not the version was trained constrained;
    ``constrained`` is None for a version registered before constraints were recorded.
    """
    threshold = alert_threshold() if threshold is None else threshold
    ts = ts.with_every_attribute()  # the version may take an attribute these rows lack: it imputes its mean
    names = check_model(model_bytes, metadata, expected=ts.feature_names)
    latest = latest_period(ts.time) if hold_out else None
    rows = ts.subset(latest[0]) if latest is not None else ts
    sess = session(model_bytes)
    cols = [rows.feature_names.index(n) for n in names]

    def predict(X: np.ndarray) -> np.ndarray:
        return onnx_proba(sess, X)

    X = rows.matrix()[:, cols]
    p = predict(X)
    base = oof_baselines(rows, seed=seed)
    constrained = metadata["monotonic"].get("constrained") if isinstance(metadata.get("monotonic"), dict) else None
    comparison = None
    if compare_calibration:
        if latest is None or "family" not in metadata or "params" not in metadata:
            raise ModelError("comparing calibrations needs a dated data set spanning several months (the earlier "
                             "ones are trained on) and metadata with the version's family and params")
        same = dataclasses.replace(ts, features=ts.features[names])  # the version's features, in its order
        comparison = compare_calibrations(same.subset(np.setdiff1d(np.arange(ts.n), latest[0])),
                                          same.subset(latest[0]), metadata["family"], metadata["params"], seed,
                                          threshold, bool(constrained))
    return Evaluation(version=str(metadata.get("version", "?")), rows=rows, model_p=p, baselines=base,
                      metrics=compare_on(rows, p, base, threshold), calibration=calibration_table(rows.label, p),
                      lift=lift_by_decile(rows.label, p),
                      importance=permutation_importance(predict, X, rows.label, names, n_repeats=3, seed=seed),
                      calibration_comparison=comparison,
                      monotonicity=monotonicity_check(predict, X, names, risk_directions(names), seed=seed),
                      constrained=constrained)
