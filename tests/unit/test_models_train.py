"""The search's choice rule (one standard error between families, the family's best within it) and its grids."""

from __future__ import annotations

from typing import Any

from models.train import DEFAULTS, FAMILIES, SPACES, choose, configurations


def lr(C: float, penalty: str = "l1") -> dict[str, Any]:
    """A logistic regression configuration."""
    return {"C": C, "class_weight": None, "transform": "standard", "penalty": penalty}


def trial(family: str, params: dict[str, Any], mean: float, std: float = 0.03) -> dict[str, Any]:
    """A search trial over three folds (SE = std / sqrt(3))."""
    return {"family": family, "params": params, "auc_mean": mean, "auc_std": std,
            "fold_auc": [mean - std, mean, mean + std]}


RF = {"n_estimators": 200, "min_samples_leaf": 20, "max_features": "sqrt", "max_depth": None, "class_weight": None}


def test_choose_prefers_logistic_regression_within_one_se_and_takes_its_best_configuration() -> None:
    # Top: random forest 0.720 (SE 0.0173, bar 0.7027). LR C=0.1 is in the band, so LR is chosen, and
    # its best trial, not the sparser C=0.03 (also in the band: that would be interest_rate alone).
    trials = [trial("random_forest", RF, 0.720), trial("logistic_regression", lr(0.01), 0.500, 0.0),
              trial("logistic_regression", lr(0.03), 0.705), trial("logistic_regression", lr(0.1), 0.715),
              trial("logistic_regression", lr(1.0, "l2"), 0.690)]
    assert choose(trials)["params"] == lr(0.1)


def test_choose_ranks_families_simplest_first_whatever_the_trial_order() -> None:
    gb = dict(DEFAULTS["gradient_boosting"])
    trials = [trial("random_forest", RF, 0.701), trial("gradient_boosting", gb, 0.700),
              trial("logistic_regression", lr(0.1), 0.650)]
    assert choose(trials)["family"] == "gradient_boosting"
    assert FAMILIES.index("logistic_regression") < FAMILIES.index("gradient_boosting") < FAMILIES.index("random_forest")


def test_choose_moves_to_a_more_complex_family_only_beyond_one_se() -> None:
    trials = [trial("logistic_regression", lr(0.1), 0.650), trial("random_forest", RF, 0.700, 0.01),
              trial("random_forest", {**RF, "max_depth": 6}, 0.690, 0.01)]
    assert choose(trials)["params"] == RF


def test_logistic_regression_budget_six_is_the_default_and_the_whole_l1_path() -> None:
    configs = configurations("logistic_regression", 6)
    assert configs[0] == DEFAULTS["logistic_regression"]
    assert [c["C"] for c in configs[1:]] == SPACES["logistic_regression"]["C"]
    assert all(c["penalty"] == "l1" and c["class_weight"] is None and c["transform"] == "standard"
               for c in configs[1:])
    assert len(configurations("logistic_regression", 3)) == 3
