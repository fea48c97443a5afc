"""The shadow comparison (models/shadow.py): pairing the lake's rows, its metrics and the promotion rule with real
models, and the registry's challengers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.errors import ChallengeRefused, PromotionRefused
from models.evaluate import expected_calibration_error
from models.shadow import PromotionRule, _auc, _ece, compare, compare_pair, paired_rows


def score_row(loan: str, role: str | None, version: str, p: float, kind: str = "application",
              at: str = "2021-01-01T00:00:00Z") -> dict[str, object]:
    return {"loan_id": loan, "trigger_kind": kind, "trigger_time": pd.Timestamp(at), "role": role,
            "model_version": version, "probability": p}


def outcome(loan: str, defaulted: bool, observed_until: str = "2022-06-01T00:00:00Z") -> dict[str, object]:
    return {"loan_id": loan, "first_default_date": pd.Timestamp("2021-04-01") if defaulted else pd.NaT,
            "observed_until": pd.Timestamp(observed_until), "repayment_records": 12}


def test_pairs_are_the_champion_and_challenger_rows_of_the_same_application_with_a_matured_label() -> None:
    scores = pd.DataFrame([
        score_row("a", "champion", "v1", 0.1), score_row("a", "challenger", "v2", 0.2),
        score_row("a", "challenger", "v2", 0.9, kind="behaviour_window", at="2021-02-01T00:00:00Z"),
        score_row("b", None, "v1", 0.3), score_row("b", "challenger", "v2", 0.4),  # NULL role: the champion's
        score_row("c", "champion", "v1", 0.5),  # no challenger row: not paired
        score_row("d", "champion", "v1", 0.6), score_row("d", "challenger", "v2", 0.7),  # label not matured
        score_row("e", "champion", "v0", 0.6), score_row("e", "challenger", "v2", 0.7),  # another champion
    ])
    outcomes = pd.DataFrame([outcome("a", True), outcome("b", False), outcome("c", False),
                             outcome("d", False, observed_until="2021-05-01T00:00:00Z"), outcome("e", False)])
    pairs = paired_rows(scores, outcomes, champion_version="v1")
    assert list(pairs) == ["v2"]
    got = pairs["v2"]
    assert got[["loan_id", "champion", "challenger", "defaulted"]].values.tolist() == [["a", 0.1, 0.2, 1],
                                                                                        ["b", 0.3, 0.4, 0]]
    assert set(paired_rows(scores, outcomes)["v2"]["loan_id"]) == {"a", "b", "e"}


def test_a_champion_whose_loans_have_no_outcome_yet_has_no_pairs_rather_than_failing() -> None:
    """The retrain flow's first task: outcomes exist, but none for the loans the current champion scored (it was
    promoted after they were written), so the labels are empty; the comparison finds nothing to compare."""
    scores = pd.DataFrame([score_row("a", "champion", "v1", 0.1), score_row("a", "challenger", "v2", 0.2),
                           score_row("z", "champion", "v0", 0.3)])
    assert paired_rows(scores, pd.DataFrame([outcome("z", True)]), champion_version="v1") == {}


def test_the_bootstrap_metrics_equal_the_report_metrics() -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(1, 12, 700)
    y = (rng.random(700) < p * 1.3).astype(float)
    p[:50] = p[50]  # ties share a bin and an average rank
    assert _auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert _ece(y, p) == pytest.approx(expected_calibration_error(y, p), abs=1e-12)


@pytest.fixture(scope="module")
def scored_cohort() -> dict[str, object]:
    """Real models on generated loans, scored on a later generated cohort: one trained on permuted labels (no
    skill), one on flipped labels, one on the true labels."""
    from models.export import onnx_proba, session
    from models.pipeline import train_candidate
    from models.synthetic import generated_training_set
    ts = generated_training_set(1500, seed=11)
    cohort = generated_training_set(600, seed=2207)

    def fit(label: np.ndarray) -> np.ndarray:
        cand = train_candidate(dataclasses.replace(ts, label=label.astype(np.int8)), ["logistic_regression"], 1,
                               n_repeats=1, hold_out=False)
        names = cand.metadata["feature_names"]
        return onnx_proba(session(cand.model_bytes), cohort.features[names].to_numpy(np.float32))
    return {"y": cohort.label, "noise": fit(np.random.default_rng(0).permutation(ts.label)),
            "flipped": fit(1 - ts.label), "better": fit(ts.label)}


def pairs_of(cohort: dict[str, object], champion: str, challenger: str) -> pd.DataFrame:
    return pd.DataFrame({"loan_id": range(len(cohort["y"])), "champion_version": champion,  # type: ignore[arg-type]
                         "champion": cohort[champion], "challenger": cohort[challenger], "defaulted": cohort["y"]})


def test_a_challenger_trained_on_flipped_labels_loses_and_a_better_one_wins(scored_cohort: dict[str, object]) -> None:
    rule = PromotionRule()
    result = compare({"flipped": pairs_of(scored_cohort, "noise", "flipped"),
                      "better": pairs_of(scored_cohort, "noise", "better")}, rule)
    flipped, better = result["challengers"]["flipped"], result["challengers"]["better"]
    for name, r in result["challengers"].items():
        print(name, r["champion"], r["challenger_metrics"], r["differences"]["roc_auc"], r["reason"])
    assert not flipped["promote"] and flipped["differences"]["roc_auc"]["ci_high"] < 0
    assert better["promote"] and better["differences"]["roc_auc"]["diff"] > rule.auc_se_k * better["differences"][
        "roc_auc"]["se"]
    assert result["winner"] == "better"
    # Against the better model as champion, the flipped one loses too.
    assert not compare_pair(pairs_of(scored_cohort, "better", "flipped"), rule)["promote"]


def test_the_rule_keeps_the_champion_when_the_gain_is_within_k_errors_calibration_worsens_or_defaults_are_few(
        scored_cohort: dict[str, object]) -> None:
    pairs = pairs_of(scored_cohort, "noise", "better")
    strict = compare_pair(pairs, PromotionRule(auc_se_k=50))
    assert not strict["promote"] and "standard errors" in strict["reason"]
    overconfident = pairs.assign(challenger=np.sqrt(pairs["challenger"]))  # same ranking, same AUC gain
    miscalibrated = compare_pair(overconfident, PromotionRule())
    assert not miscalibrated["promote"] and "calibration error" in miscalibrated["reason"]
    assert miscalibrated["differences"]["roc_auc"]["diff"] == pytest.approx(
        compare_pair(pairs, PromotionRule())["differences"]["roc_auc"]["diff"])
    few = compare_pair(pairs, PromotionRule(min_defaults=int(pairs["defaulted"].sum()) + 1))
    assert not few["promote"] and "fewer than" in few["reason"]


def test_the_bootstrap_is_repeatable_and_paired(scored_cohort: dict[str, object]) -> None:
    pairs = pairs_of(scored_cohort, "noise", "better")
    a, b = compare_pair(pairs, PromotionRule(seed=5)), compare_pair(pairs, PromotionRule(seed=5))
    assert a["differences"] == b["differences"]
    same = compare_pair(pairs.assign(challenger=pairs["champion"]), PromotionRule())
    assert same["differences"]["roc_auc"]["se"] == 0 and not same["promote"]


def test_the_registry_keeps_at_most_two_checked_challengers_and_promotion_takes_one_off(tmp_path: Path) -> None:
    from models.registry import Registry
    from tests.unit.test_udf_scorer import FEATS_C, FEATS_D, train
    reg = Registry(str(tmp_path / "registry"))
    models = [train(FEATS_C, 3), train(FEATS_D, 4), train(FEATS_C, 5), train(FEATS_D, 6)]
    champion, *others = [reg.register(m.onnx, m.registration()) for m in models]
    reg.promote(champion, force=True)
    with pytest.raises(ChallengeRefused, match="is the champion"):
        reg.challenge(champion)
    reg.challenge(others[0])
    with pytest.raises(ChallengeRefused, match="already a challenger"):
        reg.challenge(others[0])
    with pytest.raises(ChallengeRefused, match="over model.max_model_bytes"):
        reg.challenge(others[1], max_model_bytes=100)
    reg.challenge(others[1])
    with pytest.raises(ChallengeRefused, match="the most the stream scores"):
        reg.challenge(others[2])
    entries = reg.challengers()
    assert [e["version"] for e in entries] == others[:2]
    assert entries[0]["model_sha256"] == reg.metadata(others[0])["model_sha256"]
    with pytest.raises(PromotionRefused, match="does not promote it"):
        reg.promote(others[0], shadow={"challenger": others[0], "promote": False, "reason": "AUC gain too small"})
    pointer = reg.promote(others[0], shadow={"challenger": others[0], "promote": True, "reason": "won"})
    assert pointer["comparison"] == {"shadow": {"challenger": others[0], "promote": True, "reason": "won"},
                                     "passed": True} and not pointer["forced"]
    assert [e["version"] for e in reg.challengers()] == [others[1]]
    reg.withdraw(others[1])
    with pytest.raises(ChallengeRefused, match="is not a challenger"):
        reg.withdraw(others[1])
    assert reg.challengers() == []
