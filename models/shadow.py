"""Shadow comparison: the champion against each challenger on the same loans, from the lake's score rows.

While a version is a challenger (registry ``challengers.json``), the stream writes its probability for every
scored row beside the champion's (risk.scores, ``role`` = 'challenger'). Once those loans' labels have matured
(risk.loan_outcomes, the default definition of contracts/outcomes.py, as training reads them), each challenger
is compared with the champion on the loans both scored at the same decision: each loan's application score,
champion row and challenger row of the same trigger, so the comparison is paired by construction.

Figures per challenger: ROC AUC, Brier score and expected calibration error (models/evaluate.py) of both, and
the challenger-minus-champion differences with standard errors and 95 % intervals from a paired bootstrap over
loans (both models' scores of a loan are resampled together; defaulted and other loans are resampled
separately, so every resample has both and the AUC is defined).

The promotion rule (:class:`PromotionRule`, settings ``model.shadow_*``): promote a challenger when its AUC gain
is more than ``auc_se_k`` bootstrap standard errors above zero, its expected calibration error is not worse than
the champion's by more than ``max_ece_increase``, and the comparison holds at least ``min_defaults`` matured
defaults; of several that pass, the one with the largest gain in standard errors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.tables import CHALLENGER_ROLE, CHAMPION_ROLE
from loanrisk.settings import ModelSettings
from models.errors import DatasetError
from models.evaluate import CALIBRATION_BINS, expected_calibration_error

_SETTINGS = ModelSettings.model_fields
SCORE_COLUMNS = ("loan_id", "trigger_kind", "trigger_time", "role", "model_version", "probability")
OUTCOME_COLUMNS = ("loan_id", "first_default_date", "observed_until", "repayment_records")


@dataclass(frozen=True)
class PromotionRule:
    """When a challenger's shadow comparison promotes it (docs/MODELS.md, "Shadow challengers")."""

    # The defaults are the settings' (model.shadow_*), declared once there.
    auc_se_k: float = _SETTINGS["shadow_auc_se_k"].default
    max_ece_increase: float = _SETTINGS["shadow_max_ece_increase"].default
    min_defaults: int = _SETTINGS["shadow_min_defaults"].default
    bootstrap: int = _SETTINGS["shadow_bootstrap"].default
    seed: int = 0

    @classmethod
    def from_settings(cls, model: Any) -> PromotionRule:
        """The rule of ``settings.model``."""
        return cls(auc_se_k=model.shadow_auc_se_k, max_ece_increase=model.shadow_max_ece_increase,
                   min_defaults=model.shadow_min_defaults, bootstrap=model.shadow_bootstrap)


def paired_rows(scores: pd.DataFrame, outcomes: pd.DataFrame, champion_version: str | None = None
                ) -> dict[str, pd.DataFrame]:
    """Per challenger version: the loans it and the champion scored at the same application, with matured labels.

    ``scores``: rows of risk.scores (SCORE_COLUMNS; a NULL role is the champion's, rows written before the role
    column). ``outcomes``: rows of risk.loan_outcomes. ``champion_version``: only the loans that version scored as
    champion (a challenger is compared with the champion it would replace). Each frame has loan_id,
    trigger_time, champion_version, champion, challenger (probabilities) and defaulted (0/1), by trigger time.
    """
    from models.dataset import LABEL, label_outcomes, latest_outcomes

    apps = scores[scores["trigger_kind"] == "application"]
    role = apps["role"].fillna(CHAMPION_ROLE) if "role" in apps.columns else pd.Series(CHAMPION_ROLE, apps.index)
    key = ["loan_id", "trigger_kind", "trigger_time"]
    champion = (apps[(role == CHAMPION_ROLE) & apps["probability"].notna()]
                .drop_duplicates(key)[[*key, "model_version", "probability"]]
                .rename(columns={"model_version": "champion_version", "probability": "champion"}))
    if champion_version is not None:
        champion = champion[champion["champion_version"] == champion_version]
    challengers = apps[(role == CHALLENGER_ROLE) & apps["probability"].notna()]
    if champion.empty or challengers.empty or outcomes.empty:
        return {}
    origination = champion[["loan_id", "trigger_time"]].rename(columns={"trigger_time": "origination_time"})
    labels = label_outcomes(latest_outcomes(outcomes.merge(origination, on="loan_id", how="inner")))
    labels = labels[labels["mature"]][["loan_id", LABEL]]
    out: dict[str, pd.DataFrame] = {}
    for version, rows in challengers.groupby("model_version", sort=True):
        pairs = (champion.merge(rows.drop_duplicates(key)[[*key, "probability"]]
                                .rename(columns={"probability": "challenger"}), on=key, how="inner")
                 .merge(labels, on="loan_id", how="inner")
                 .sort_values(["trigger_time", "loan_id"], kind="stable").reset_index(drop=True))
        if not pairs.empty:
            out[str(version)] = pairs.assign(defaulted=pairs[LABEL].astype(np.int8))[
                ["loan_id", "trigger_time", "champion_version", "champion", "challenger", "defaulted"]]
    return out


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (tied scores at their average rank)."""
    from scipy.stats import rankdata
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _ece(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """models.evaluate.expected_calibration_error in numpy, for the bootstrap: the same equal-count bins (a score on
    an edge in the bin above), and sum over bins of |defaults - predicted| / n."""
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1]))
    b = np.searchsorted(edges, p, side="right")
    gap = np.bincount(b, weights=y, minlength=len(edges) + 1) - np.bincount(b, weights=p, minlength=len(edges) + 1)
    return float(np.abs(gap).sum() / len(p))


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"roc_auc": _auc(y, p), "brier": float(np.mean((p - y) ** 2)), "ece": expected_calibration_error(y, p)}


def _interval(draws: np.ndarray, point: float) -> dict[str, float]:
    """A difference with its bootstrap standard error and 95 % percentile interval."""
    se = float(np.std(draws, ddof=1))
    return {"diff": point, "se": se, "ci_low": float(np.quantile(draws, 0.025)),
            "ci_high": float(np.quantile(draws, 0.975)), "z": point / se if se > 0 else float("nan")}


def compare_pair(pairs: pd.DataFrame, rule: PromotionRule = PromotionRule()) -> dict[str, Any]:
    """Champion vs one challenger on its paired rows: both models' metrics, the paired differences (challenger
    minus champion) with bootstrap standard errors and intervals, and the rule's decision with its reason."""
    y = pairs["defaulted"].to_numpy(dtype=np.float64)
    pc = np.clip(pairs["champion"].to_numpy(dtype=np.float64), 0, 1)
    px = np.clip(pairs["challenger"].to_numpy(dtype=np.float64), 0, 1)
    champion, challenger = _metrics(y, pc), _metrics(y, px)
    out: dict[str, Any] = {"loans": int(len(y)), "defaults": int(y.sum()),
                           "champion_versions": sorted(set(pairs["champion_version"].astype(str))),
                           "champion": champion, "challenger_metrics": challenger}
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) < 2 or len(neg) < 2:
        out.update(differences=None, promote=False,
                   reason=f"{len(pos)} matured defaults and {len(neg)} other loans: nothing to compare yet")
        return out
    rng = np.random.default_rng(rule.seed)
    draws = np.empty((rule.bootstrap, 3))
    for b in range(rule.bootstrap):
        i = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        yi, ci, xi = y[i], pc[i], px[i]
        draws[b] = (_auc(yi, xi) - _auc(yi, ci), np.mean((xi - yi) ** 2) - np.mean((ci - yi) ** 2),
                    _ece(yi, xi) - _ece(yi, ci))
    diffs = {name: _interval(draws[:, j], challenger[name] - champion[name])
             for j, name in enumerate(("roc_auc", "brier", "ece"))}
    out["differences"] = diffs
    gain, ece_up = diffs["roc_auc"], diffs["ece"]["diff"]
    if out["defaults"] < rule.min_defaults:
        out.update(promote=False, reason=f"{out['defaults']} matured defaults, fewer than the "
                                         f"{rule.min_defaults} the rule needs")
    elif not gain["diff"] > rule.auc_se_k * gain["se"]:
        out.update(promote=False, reason=f"AUC gain {gain['diff']:+.4f} is not above {rule.auc_se_k:g} standard "
                                         f"errors ({rule.auc_se_k * gain['se']:.4f})")
    elif ece_up > rule.max_ece_increase:
        out.update(promote=False, reason=f"calibration error {ece_up:+.4f} worse than the champion's, more than "
                                         f"the {rule.max_ece_increase:g} allowed")
    else:
        out.update(promote=True, reason=f"AUC gain {gain['diff']:+.4f} = {gain['z']:.1f} standard errors, calibration "
                                        f"error {ece_up:+.4f} (at most {rule.max_ece_increase:g} worse)")
    return out


def compare(pairs: dict[str, pd.DataFrame], rule: PromotionRule = PromotionRule()) -> dict[str, Any]:
    """The shadow comparison of every challenger in ``pairs`` (:func:`paired_rows`); ``winner`` is the challenger to
    promote (None when none passes the rule)."""
    results = {version: {"challenger": version, **compare_pair(rows, rule)} for version, rows in pairs.items()}
    passed = [r for r in results.values() if r["promote"]]
    winner = max(passed, key=lambda r: r["differences"]["roc_auc"]["z"])["challenger"] if passed else None
    return {"rule": asdict(rule), "challengers": results, "winner": winner}


def lake_frames(catalog: Any = None, namespace: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(application score rows, outcome rows) from the lake, the columns :func:`compare` reads."""
    from pyiceberg.expressions import EqualTo

    from models.dataset import _scan, load_catalog

    if namespace is None:
        from loanrisk.settings import get_settings
        namespace = get_settings().catalog.namespace
    cat = catalog if catalog is not None else load_catalog()
    try:
        scores_t = cat.load_table(f"{namespace}.scores")
        outcomes_t = cat.load_table(f"{namespace}.loan_outcomes")
    except Exception as exc:  # noqa: BLE001 - a missing table or an unreachable catalog
        raise DatasetError(f"cannot read {namespace}.scores and {namespace}.loan_outcomes: {type(exc).__name__}: "
                           f"{str(exc)[:200]}") from None
    present = {f.name for f in scores_t.schema().fields}
    scores, _ = _scan(scores_t, EqualTo("trigger_kind", "application"), tuple(c for c in SCORE_COLUMNS if c in present))
    if "role" not in scores.columns:
        scores["role"] = None  # a table the job has not migrated yet: every row is the champion's
    outcomes, _ = _scan(outcomes_t, None, OUTCOME_COLUMNS)
    return scores, outcomes


def review(rule: PromotionRule, registry: Any, out_dir: str | Path | None = None, promote: bool = False,
           catalog: Any = None, namespace: str | None = None) -> dict[str, Any]:
    """The shadow comparison on the lake's rows against the current champion, its report in ``out_dir`` (if given),
    and with ``promote`` the winner made champion (``Registry.promote(shadow=...)``)."""
    pointer = registry.champion()
    champion = None if pointer is None else str(pointer["version"])
    scores, outcomes = lake_frames(catalog, namespace)
    pairs = paired_rows(scores, outcomes, champion) if champion is not None else {}
    result = {"champion": champion, **compare(pairs, rule)}
    if out_dir is not None:
        from models.report import write_shadow_report
        result["report"] = str(write_shadow_report(result, pairs, out_dir,
                                                   f"Shadow comparison with champion {champion}"))
    result["promoted"] = None
    if promote and result["winner"] is not None:
        registry.promote(result["winner"], shadow=result["challengers"][result["winner"]])
        result["promoted"] = result["winner"]
    return result
