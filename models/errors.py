"""Errors of the models package; the CLI shows each as one line."""

from __future__ import annotations

from loanrisk.errors import LoanRiskError


class ModelError(LoanRiskError):
    """Training, evaluation or scoring cannot go on; the message says why and what to do."""


class DatasetError(ModelError):
    """A training or scoring input is missing columns, empty or has too few labels."""


class FeatureMismatchError(ModelError):
    """A model's feature list does not match the contract or the columns offered to it."""


class ParityError(ModelError):
    """The ONNX model's probabilities differ from scikit-learn's beyond the tolerance."""


class RegistryError(ModelError):
    """The registry is unreachable, a version is missing or a pointer is malformed."""


class PromotionRefused(ModelError):
    """A promotion or rollback was refused by the registry rules."""


class ChallengeRefused(ModelError):
    """Setting or removing a shadow challenger was refused by the registry rules."""
