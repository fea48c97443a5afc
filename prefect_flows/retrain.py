"""retrain: shadow comparison of the challengers -> training set (Iceberg by default) -> train + ONNX export ->
evaluate -> register -> promote if better.

The shadow comparison (models/shadow.py) comes first: a challenger the stream has scored beside the champion
that wins on the same loans with matured labels is promoted by the promotion rule (settings ``model.shadow_*``)
before a new version is trained against the champion; its report goes under ``.loanrisk/reports/``.

The running Flink job polls the registry's champion pointer (settings.model.poll_interval_s), so a
promoted version scores the next events without a restart. Sources: ``iceberg`` (risk.scores
application rows joined to mature risk.loan_outcomes labels, point in time), ``generated`` (the
synthetic world, for a fresh stack without mature labels) and ``lendingclub``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed

from prefect_flows.options import TASK_DEFAULTS, flow_options, with_policy

Source = Literal["iceberg", "generated", "lendingclub"]


@task(name="load-training-set", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def load_training_set(source: Source, generated_customers: int = 3000, seed: int = 0) -> Any:
    """The TrainingSet of ``source``."""
    from models import dataset

    if source == "iceberg":
        ts = dataset.from_iceberg()
    elif source == "generated":
        from models.synthetic import generated_training_set
        ts = generated_training_set(generated_customers, seed=seed or 7)
    else:
        ts = dataset.lending_club()
    get_run_logger().info("training set %s: %d loans, %d defaults (%.2f%%)", ts.source, ts.n, ts.positives,
                          100 * ts.prevalence)
    return ts


@task(name="train-and-export", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def train(ts: Any, families: list[str], budget: int, seed: int) -> Any:
    """Search, calibrate, fit, export to ONNX and check parity (models.pipeline.train_candidate), under the
    declared monotonic directions when model.monotonic is set."""
    from loanrisk.settings import get_settings
    from models.pipeline import train_candidate

    cand = train_candidate(ts, families, budget, seed, monotonic=get_settings().model.monotonic)
    m = cand.metadata
    get_run_logger().info("chosen %s %s; CV ROC AUC %.4f ± %.4f; ONNX parity max |diff| %.2e", m["family"],
                          m["params"], m["metrics"]["cv"]["roc_auc_mean"], m["metrics"]["cv"]["roc_auc_std"],
                          m["parity"]["max_abs_diff"])
    return cand


def comparison_rows(ts: Any, cand: Any) -> Any:
    """The rows champion and challenger are compared on: the held-out latest period, else the whole set.

    The same convention as ``riskctl model promote --dataset``: a single cohort has no later slice,
    so both models are scored on all of it (the challenger has seen those rows; stated in the log).
    """
    return cand.holdout if cand.holdout is not None else ts


@task(name="evaluate", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def evaluate(ts: Any, cand: Any) -> dict[str, Any]:
    """ROC AUC of the challenger and of the current champion on the same comparison rows."""
    from sklearn.metrics import roc_auc_score

    from models.compat import check_model
    from models.export import onnx_proba, session
    from models.registry import Registry

    log = get_run_logger()
    rows = comparison_rows(ts, cand).with_every_attribute()  # the champion may take attributes these rows lack
    kind = "held-out latest period" if cand.holdout is not None else "training cohort (no later period: in-sample)"

    def auc(model_bytes: bytes, meta: dict[str, Any]) -> float:
        names = check_model(model_bytes, meta, expected=rows.feature_names)
        p = onnx_proba(session(model_bytes), rows.features[names].to_numpy(dtype=np.float32))
        return float(roc_auc_score(rows.label, p))

    out: dict[str, Any] = {"rows": rows.n, "positives": rows.positives, "on": kind,
                           "challenger_roc_auc": auc(cand.model_bytes, cand.metadata)}
    reg = Registry.from_settings()
    pointer = reg.champion()
    if pointer is not None:
        model_bytes, meta = reg.load(str(pointer["version"]))
        out.update(champion=pointer["version"], champion_roc_auc=auc(model_bytes, meta))
    log.info("on %s (%d loans, %d defaults): challenger ROC AUC %.4f; champion %s %s", kind, rows.n, rows.positives,
             out["challenger_roc_auc"], out.get("champion", "none"),
             f"{out['champion_roc_auc']:.4f}" if "champion_roc_auc" in out else "")
    return out


@task(name="shadow-comparison", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def shadow_comparison(promote: bool) -> dict[str, Any]:
    """Champion vs each challenger on the lake's paired scores of matured loans; promote the rule's winner."""
    from datetime import datetime, timezone

    from loanrisk.settings import get_settings
    from models.errors import DatasetError
    from models.registry import Registry
    from models.shadow import PromotionRule, review

    log = get_run_logger()
    s = get_settings()
    out = s.state_dir / "reports" / f"shadow-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    try:
        result = review(PromotionRule.from_settings(s.model), Registry.from_settings(), out, promote=promote)
    except DatasetError as exc:
        log.info("no shadow comparison: %s", exc)
        return {"skipped": str(exc)}
    for version, r in result["challengers"].items():
        log.info("challenger %s vs champion %s on %d loans (%d defaults): %s: %s", version, result["champion"],
                 r["loans"], r["defaults"], "promote" if r["promote"] else "keep", r["reason"])
    if result["promoted"]:
        log.info("promoted challenger %s on its shadow comparison; report %s", result["promoted"], result["report"])
    return result


@task(name="register", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def register(cand: Any) -> str:
    """Register the candidate (parity and feature checks apply); returns the new version."""
    from models.registry import Registry

    reg = Registry.from_settings()
    version = cand.register(reg)
    get_run_logger().info("registered %s in %s", version, reg.root)
    return version


@task(name="promote-if-better", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def promote_if_better(version: str, ts: Any, cand: Any) -> dict[str, Any]:
    """Promote ``version`` when it beats the champion by settings.model.promotion_margin on the same rows."""
    from models.errors import PromotionRefused
    from models.registry import Registry

    log = get_run_logger()
    reg = Registry.from_settings()
    try:
        pointer = reg.promote(version, holdout=comparison_rows(ts, cand))
    except PromotionRefused as exc:
        log.info("not promoted: %s", exc)
        return {"promoted": False, "reason": str(exc)}
    log.info("promoted %s (previous champion: %s); the risk job loads it within its registry poll interval",
             pointer["version"], pointer["previous"])
    return {"promoted": True, "pointer": pointer}


@flow(**flow_options("retrain", "Retrain the default model from Iceberg and promote it if it beats the champion."))
def retrain(source: Source = "iceberg", families: list[str] | None = None, budget: int = 4, seed: int = 0,
            promote: bool = True, generated_customers: int = 3000, shadow: bool = True) -> Any:
    """Compare the challengers (``shadow``), load, train and export, evaluate, register, promote if better; skipped
    (Completed) with too few labels."""
    from models.errors import DatasetError, ModelError
    from models.train import FAMILIES

    log = get_run_logger()
    shadow_result = with_policy(shadow_comparison)(promote) if shadow else None
    try:
        ts = with_policy(load_training_set)(source, generated_customers, seed)
        cand = with_policy(train, retries=0)(ts, list(families or FAMILIES), budget, seed)
    except (DatasetError, ModelError) as exc:
        log.warning("retrain skipped: %s", exc)
        return Completed(message=f"skipped: {exc}")
    result: dict[str, Any] = {"shadow": shadow_result, "evaluation": with_policy(evaluate)(ts, cand),
                              "version": with_policy(register)(cand)}
    result["promotion"] = (with_policy(promote_if_better)(result["version"], ts, cand) if promote
                           else {"promoted": False, "reason": "promote=False"})
    return result
