"""Model families, a fixed-budget hyperparameter search by stratified CV, and the calibrated final fit.

Families: logistic regression (StandardScaler; a uniform QuantileTransformer is supported, not searched),
random forest, and gradient boosting: HistGradientBoosting when skl2onnx converts it in the installed versions
(checked at run time by :func:`hist_gradient_boosting_converts`), else GradientBoosting.

With ``monotonic`` the search trains every family under the features' declared directions
(models/monotonic.py): ``monotonic_cst`` for the forest and for boosting, which is then always
HistGradientBoosting (GradientBoosting takes no constraints; the export mends skl2onnx's converter,
models/onnx_boosting.py), and a sign-constrained logistic regression. Off by default: it changes the
chosen model, and a default changes only after a held-out comparison on Lending Club (docs/MODELS.md).

Class imbalance (about 1 % defaults on Lending Club) is handled by calibration, and with class weights
only where they are a search choice: random forest tries ``class_weight`` None/"balanced_subsample";
logistic regression searches only its L1 path (weights would mostly rescale C, doubling the choices
a noisy CV picks from) and gradient boosting is unweighted (sklearn's GradientBoosting
has no class_weight, and sample weights passed through CalibratedClassifierCV would also weight the
calibrator). Every final model is wrapped in a CalibratedClassifierCV, fitted on out-of-fold
predictions without weights, so probabilities come back to the true prevalence whatever weighting the
ranking model used. Sigmoid (Platt) is the default; isotonic is an option (``calibration="isotonic"``),
exported with its own converter (models/onnx_isotonic.py) because skl2onnx's does not interpolate.
Sigmoid stays the default until isotonic is shown to be at least as good on held-out data: with about
a hundred defaults an isotonic fit has few steps and can overfit them (docs/MODELS.md).

Every model starts with a mean imputer: a feature may be missing (an application attribute the
application lacks, contracts/attributes.py), and the model then takes the mean of its own training rows,
the value the stream's scorer fills in too (``feature_reference``). It is part of the exported ONNX graph,
so any caller of the model gets the same answer for a missing value.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.impute import SimpleImputer
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import ParameterSampler, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import QuantileTransformer, StandardScaler

from models.dataset import TrainingSet
from models.errors import ModelError
from models.monotonic import SignConstrainedLogisticRegression, constraints
from models.split import Fold

FAMILIES: tuple[str, ...] = ("logistic_regression", "gradient_boosting", "random_forest")  # simplest first
CALIBRATION = "sigmoid"
CALIBRATIONS: tuple[str, ...] = ("sigmoid", "isotonic")
QUANTILES = 100

# Each family's default configuration: always the first one tried.
DEFAULTS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"C": 1.0, "class_weight": None, "transform": "standard", "penalty": "l2"},
    "random_forest": {"n_estimators": 200, "min_samples_leaf": 20, "max_features": "sqrt", "max_depth": None,
                      "class_weight": None},
    "gradient_boosting": {"n_estimators": 150, "learning_rate": 0.05, "max_depth": 2, "subsample": 0.8,
                          "min_samples_leaf": 50},
}
SPACES: dict[str, dict[str, list[Any]]] = {
    # One axis: the L1 path (with budget 6 the default plus all of it). L1 drops features that only add
    # noise; what each C keeps on Lending Club is in docs/MODELS.md.
    "logistic_regression": {"C": [0.01, 0.03, 0.1, 0.3, 1.0], "class_weight": [None], "transform": ["standard"],
                            "penalty": ["l1"]},
    "random_forest": {"n_estimators": [100, 200], "min_samples_leaf": [5, 20, 50, 100],
                      "max_features": ["sqrt", 0.5], "max_depth": [None, 6, 10],
                      "class_weight": [None, "balanced_subsample"]},
    "gradient_boosting": {"n_estimators": [100, 150, 300], "learning_rate": [0.02, 0.05, 0.1],
                          "max_depth": [2, 3], "subsample": [0.8, 1.0], "min_samples_leaf": [20, 50, 100]},
}
CLASS_WEIGHTING = {
    "logistic_regression": "unweighted (calibration restores prevalence; C alone sets the shrinkage)",
    "random_forest": "class_weight searched in {None, 'balanced_subsample'}",
    "gradient_boosting": "unweighted (no class_weight in GradientBoosting; calibration restores prevalence)",
}


@lru_cache(maxsize=1)
def hist_gradient_boosting_converts() -> bool:
    """True when skl2onnx's own converter converts a fitted HistGradientBoostingClassifier in the installed versions.

    Asked of skl2onnx alone, not of the export (which mends the converter, models/onnx_boosting.py): the
    unconstrained family changes estimator only when skl2onnx itself is fixed, not as a side effect.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + rng.normal(size=200) > 0).astype(int)
    try:
        convert_sklearn(HistGradientBoostingClassifier(max_iter=3).fit(X, y),
                        initial_types=[("features", FloatTensorType([None, 3]))], options={"zipmap": False})
    except Exception:  # noqa: BLE001 - skl2onnx 1.20 + onnx 1.23: "Expected an int, got a boolean"
        return False
    return True


def boosting_name(constrained: bool = False) -> str:
    """Which boosting estimator the gradient_boosting family uses here (always HistGradientBoosting when constrained)."""
    if constrained or hist_gradient_boosting_converts():
        return "HistGradientBoostingClassifier"
    return "GradientBoostingClassifier"


def _boosting(params: dict[str, Any], seed: int, monotonic_cst: list[int] | None = None) -> ClassifierMixin:
    """The boosting estimator for ``params``: HistGradientBoosting when constrained or when skl2onnx converts it."""
    if boosting_name(monotonic_cst is not None) == "HistGradientBoostingClassifier":
        # HistGradientBoosting has no subsample. early_stopping off: the search sets the iterations, and
        # "auto" would hold out a tenth of the rows (and of the few defaults) above 10,000 loans.
        return HistGradientBoostingClassifier(
            max_iter=params["n_estimators"], learning_rate=params["learning_rate"],
            max_depth=params["max_depth"], min_samples_leaf=params["min_samples_leaf"], early_stopping=False,
            monotonic_cst=monotonic_cst, random_state=seed)
    return GradientBoostingClassifier(random_state=seed, **params)


def _classifier(family: str, params: dict[str, Any], seed: int,
                monotonic_cst: list[int] | None = None) -> ClassifierMixin:
    """The uncalibrated classifier of ``family`` (without the logistic regression's preprocessing).

    ``monotonic_cst``: a direction per feature (+1, -1, 0) the classifier must obey, or None.
    """
    if family == "logistic_regression":
        l1 = params.get("penalty", "l2") == "l1"
        kwargs: dict[str, Any] = {"C": params["C"], "class_weight": params["class_weight"], "max_iter": 5000,
                                  "l1_ratio": 1.0 if l1 else 0.0, "solver": "liblinear" if l1 else "lbfgs"}
        if monotonic_cst is not None:
            return SignConstrainedLogisticRegression(monotonic_cst=monotonic_cst, **kwargs)
        return LogisticRegression(**kwargs)
    if family == "random_forest":
        return RandomForestClassifier(random_state=seed, n_jobs=1, monotonic_cst=monotonic_cst, **params)
    if family == "gradient_boosting":
        return _boosting(params, seed, monotonic_cst)
    raise ModelError(f"unknown model family {family!r}; choose from {', '.join(FAMILIES)}")


def mean_imputer() -> SimpleImputer:
    """Missing values (NaN) take the training mean; a column with none in training is kept (and takes 0)."""
    return SimpleImputer(strategy="mean", keep_empty_features=True)


def _wrap(family: str, params: dict[str, Any], clf: ClassifierMixin) -> ClassifierMixin:
    """Put the mean imputer, and for logistic regression the scaling (and optional quantile transform), in front
    of ``clf``.

    Yeo-Johnson is not offered: its fitted lambdas can squeeze a feature into a range float32 cannot
    resolve, so the ONNX export fails the parity check (docs/MODELS.md).
    """
    steps: list[tuple[str, Any]] = [("impute", mean_imputer())]
    if family != "logistic_regression":
        return Pipeline(steps + [("clf", clf)])
    if params["transform"] == "quantile":
        steps.append(("quantile", QuantileTransformer(n_quantiles=QUANTILES, output_distribution="uniform")))
    steps += [("scale", StandardScaler()), ("clf", clf)]
    return Pipeline(steps)


def ranking_estimator(family: str, params: dict[str, Any], seed: int = 0,
                      monotonic_cst: list[int] | None = None) -> ClassifierMixin:
    """The uncalibrated model the search ranks configurations with (sigmoid calibration keeps ROC AUC)."""
    return _wrap(family, params, _classifier(family, params, seed, monotonic_cst))


def check_calibration(calibration: str) -> str:
    """``calibration`` when it is one of CALIBRATIONS, else a ModelError naming them."""
    if calibration not in CALIBRATIONS:
        raise ModelError(f"unknown calibration {calibration!r}; choose from {', '.join(CALIBRATIONS)}")
    return calibration


def final_estimator(family: str, params: dict[str, Any], seed: int = 0, calibration: str = CALIBRATION,
                    monotonic_cst: list[int] | None = None) -> ClassifierMixin:
    """The model that is registered: the family's classifier inside a CalibratedClassifierCV (``calibration``).

    For logistic regression the scaler stays outside the calibrator: skl2onnx mis-converts a
    calibrated Pipeline (docs/MODELS.md).
    """
    cal = CalibratedClassifierCV(_classifier(family, params, seed, monotonic_cst), method=check_calibration(calibration),
                                 ensemble=False, cv=StratifiedKFold(n_splits=3, shuffle=True, random_state=seed))
    return _wrap(family, params, cal)


def logistic_baseline() -> ClassifierMixin:
    """The reference logistic regression: mean imputer, StandardScaler + LogisticRegression, defaults, unweighted."""
    return Pipeline([("impute", mean_imputer()), ("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=5000))])


def configurations(family: str, budget: int, seed: int = 0) -> list[dict[str, Any]]:
    """``budget`` configurations of ``family``: its default first, then distinct random draws."""
    if budget < 1:
        raise ModelError("the search budget must be at least 1 configuration per family")
    out = [dict(DEFAULTS[family])]
    with warnings.catch_warnings():  # a grid smaller than n_iter is sampled whole, in grid order
        warnings.simplefilter("ignore", UserWarning)
        draws = list(ParameterSampler(SPACES[family], n_iter=max(4 * budget, 16), random_state=seed))
    for cand in draws:
        if len(out) >= budget:
            break
        if cand not in out:
            out.append(dict(cand))
    return out


def positive_proba(model: Any, X: np.ndarray) -> np.ndarray:
    """P(default) from a fitted classifier."""
    return np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)


def cv_auc(estimator: ClassifierMixin, X: np.ndarray, y: np.ndarray, folds: Sequence[Fold]) -> np.ndarray:
    """ROC AUC of ``estimator`` on each fold (refitted per fold)."""
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        for tr, te in folds:
            m = clone(estimator).fit(X[tr], y[tr])
            scores.append(roc_auc_score(y[te], positive_proba(m, X[te])))
    return np.array(scores)


def choose(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The one-standard-error rule between families: the simplest family whose best trial is within one SE of the top.

    With ~100 defaults, CV differences of a few hundredths of ROC AUC are noise; a simpler family
    within that noise is preferred (cheaper to score, easier to explain). Within the family its best
    trial is taken: the rule is not applied to configurations, because on the logistic regression's
    L1 path "simplest within one SE" is the interest_rate-only model, i.e. the lender's own grade.
    """
    top = max(trials, key=lambda t: t["auc_mean"])
    n = max(len(top["fold_auc"]), 1)
    bar = top["auc_mean"] - top["auc_std"] / np.sqrt(n)
    for family in sorted(dict.fromkeys(t["family"] for t in trials), key=FAMILIES.index):
        best = max((t for t in trials if t["family"] == family), key=lambda t: t["auc_mean"])
        if best["auc_mean"] >= bar:
            return best
    return top


@dataclass
class SearchResult:
    """Every configuration tried with its CV ROC AUC, and the chosen family and parameters."""

    trials: list[dict[str, Any]]
    family: str
    params: dict[str, Any]
    cv_auc_mean: float
    cv_auc_std: float

    def best_per_family(self) -> dict[str, dict[str, Any]]:
        """The best trial of each family."""
        best: dict[str, dict[str, Any]] = {}
        for t in self.trials:
            if t["family"] not in best or t["auc_mean"] > best[t["family"]]["auc_mean"]:
                best[t["family"]] = t
        return best


def search(X: np.ndarray, y: np.ndarray, folds: Sequence[Fold], families: Sequence[str] = FAMILIES,
           budget: int | dict[str, int] = 6, seed: int = 0, monotonic_cst: list[int] | None = None) -> SearchResult:
    """Try ``budget`` configurations per family on the same folds; choose by :func:`choose`.

    ``monotonic_cst`` (a direction per column of ``X``, or None) constrains every configuration tried.
    """
    trials: list[dict[str, Any]] = []
    for family in families:
        if family not in FAMILIES:
            raise ModelError(f"unknown model family {family!r}; choose from {', '.join(FAMILIES)}")
        n = budget[family] if isinstance(budget, dict) else budget
        for params in configurations(family, n, seed):
            aucs = cv_auc(ranking_estimator(family, params, seed, monotonic_cst), X, y, folds)
            trials.append({"family": family, "params": params, "auc_mean": float(aucs.mean()),
                           "auc_std": float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0,
                           "fold_auc": [round(float(a), 6) for a in aucs]})
    if not trials:
        raise ModelError("no model family to search")
    best = choose(trials)
    return SearchResult(trials=trials, family=best["family"], params=best["params"],
                        cv_auc_mean=best["auc_mean"], cv_auc_std=best["auc_std"])


@dataclass
class TrainedModel:
    """A fitted, calibrated model with everything its registry metadata needs."""

    estimator: Any
    family: str
    params: dict[str, Any]
    feature_names: list[str]
    feature_reference: dict[str, float]
    search: SearchResult
    extra: dict[str, Any] = field(default_factory=dict)
    calibration: str = CALIBRATION
    monotonic_cst: list[int] | None = None

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(default) for rows of ``X`` (columns in ``feature_names`` order)."""
        return positive_proba(self.estimator, X)


def feature_reference(ts: TrainingSet) -> dict[str, float]:
    """Training means per feature (over the rows that have it): the reference value reason codes replace a feature
    with, and the value the scorer gives a missing one (the model's imputer learns the same means)."""
    return {name: float(ts.features[name].mean()) for name in ts.feature_names}


def fit_final(ts: TrainingSet, family: str, params: dict[str, Any], seed: int = 0,
              calibration: str = CALIBRATION, monotonic: bool = False) -> Any:
    """The configuration ``family``/``params`` fitted, calibrated by ``calibration``, on all of ``ts``
    (under the features' declared directions with ``monotonic``)."""
    cst = constraints(ts.feature_names) if monotonic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return final_estimator(family, params, seed, calibration, cst).fit(ts.matrix().astype(np.float64), ts.label)


def fit(ts: TrainingSet, folds: Sequence[Fold], families: Sequence[str] = FAMILIES,
        budget: int | dict[str, int] = 6, seed: int = 0, calibration: str = CALIBRATION,
        monotonic: bool = False) -> TrainedModel:
    """Search on ``folds`` of ``ts``, then fit the chosen configuration, calibrated, on all of ``ts``.

    ``monotonic``: search and fit under the directions ``contracts.features`` declares for ``ts``'s features.
    """
    X, y = ts.matrix().astype(np.float64), ts.label
    check_calibration(calibration)
    if ts.positives < 6 or ts.n - ts.positives < 6:
        raise ModelError(f"{ts.source}: {ts.positives} defaults in {ts.n} loans is too few to train on")
    cst = constraints(ts.feature_names) if monotonic else None
    result = search(X, y, folds, families, budget, seed, cst)
    estimator = fit_final(ts, result.family, result.params, seed, calibration, monotonic)
    return TrainedModel(estimator=estimator, family=result.family, params=result.params,
                        feature_names=ts.feature_names, feature_reference=feature_reference(ts), search=result,
                        calibration=calibration, monotonic_cst=cst)
