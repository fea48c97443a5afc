"""A champion for an empty registry: the demo and the benchmark need a model before the job can score."""

from __future__ import annotations

from collections.abc import Callable

from loanrisk.settings import Settings


def ensure_champion(settings: Settings, say: Callable[[str], object] = lambda _: None) -> str:
    """The champion's version; trains and promotes one on generated loans when the registry is empty."""
    from models.registry import Registry
    registry = Registry.from_settings(settings.model.registry(settings.s3))
    champion = registry.champion()
    if champion:
        return str(champion["version"])
    say("no champion model yet: training logistic regression on generated loans ...")
    from models.synthetic import train_on_generated
    result = train_on_generated(customers=1500, seed=7, families=["logistic_regression"], budget=2,
                                monotonic=settings.model.monotonic)
    version = result["candidate"].register(registry)
    registry.promote(version, force=True)
    say(f"champion {version} (holdout ROC AUC {result['roc_auc']:.3f})")
    return str(version)
