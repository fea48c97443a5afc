"""Splits: the latest period held out for the final check, stratified CV folds within the earlier data.

A data set spanning several periods (months by default) keeps its latest period aside: models are
selected by stratified K-fold CV on the earlier loans only, and the held-out period is scored once
at the end (and is the "recent holdout" champion and challenger are compared on). A single cohort
(one period, e.g. Lending Club Jan-Mar 2018 treated as one) gets repeated stratified K-fold instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold

from models.dataset import TrainingSet
from models.errors import DatasetError

Fold = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class SplitPlan:
    """Row positions of the development part, the held-out latest period (maybe empty), and CV folds."""

    dev: np.ndarray
    holdout: np.ndarray
    folds: list[Fold]
    holdout_period: str | None = None

    @property
    def has_holdout(self) -> bool:
        """True when a latest period was held out."""
        return len(self.holdout) > 0


def latest_period(time: pd.Series | None, freq: str = "M", min_share: float = 0.1) -> tuple[np.ndarray, str] | None:
    """Positions of rows in the latest calendar period(s) and their label, or None for a single period.

    A trailing period with fewer than ``min_share`` of the rows (a month just begun) is joined by
    the periods before it until the share is reached; at least one period always stays for training.
    """
    if time is None or time.isna().all():
        return None
    periods = pd.to_datetime(time, utc=True).dt.tz_localize(None).dt.to_period(freq)
    ordered = sorted(periods.dropna().unique())
    if len(ordered) < 2:
        return None
    counts = periods.value_counts()
    chosen: list[pd.Period] = []
    for p in reversed(ordered[1:]):
        chosen.append(p)
        if counts[chosen].sum() >= min_share * len(periods):
            break
    label = str(chosen[0]) if len(chosen) == 1 else f"{chosen[-1]}..{chosen[0]}"
    return np.flatnonzero(periods.isin(chosen).to_numpy()), label


def cv_folds(y: np.ndarray, n_splits: int = 5, n_repeats: int = 1, seed: int = 0) -> list[Fold]:
    """Stratified K-fold (repeated ``n_repeats`` times with different shuffles) as position arrays."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=2)
    if counts.min() < n_splits:
        raise DatasetError(f"{counts[1]} positives and {counts[0]} negatives: too few for {n_splits}-fold "
                           "stratified CV (need at least one of each class per fold)")
    if n_repeats > 1:
        cv: RepeatedStratifiedKFold | StratifiedKFold = RepeatedStratifiedKFold(
            n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    else:
        cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in cv.split(np.zeros(len(y)), y)]


def plan(ts: TrainingSet, n_splits: int = 5, n_repeats: int = 2, seed: int = 0, freq: str = "M",
         hold_out: bool = True) -> SplitPlan:
    """Hold out the latest period when the data spans several; CV (folds index into ``dev``) on the rest.

    With a held-out period the CV is not repeated (the holdout is the final check); a single cohort
    gets ``n_repeats`` repeats of stratified ``n_splits``-fold.
    """
    latest = latest_period(ts.time, freq) if hold_out else None
    if latest is not None:
        hold, label = latest
        mask = np.zeros(ts.n, dtype=bool)
        mask[hold] = True
        dev = np.flatnonzero(~mask)
        if ts.label[hold].min(initial=1) == ts.label[hold].max(initial=0):
            raise DatasetError(f"the held-out period {label} has only one class; add data or use --no-holdout")
        return SplitPlan(dev=dev, holdout=hold, folds=cv_folds(ts.label[dev], n_splits, 1, seed),
                         holdout_period=label)
    dev = np.arange(ts.n)
    return SplitPlan(dev=dev, holdout=np.array([], dtype=np.int64),
                     folds=cv_folds(ts.label, n_splits, n_repeats, seed))


def holdout_id(ts: TrainingSet) -> str:
    """A stable id of a holdout's rows (loan ids when known, else the feature bytes) to compare versions on."""
    h = hashlib.sha256(ts.source.encode() + b"\n")
    if ts.ids is not None:
        for loan, y in sorted(zip(ts.ids.astype(str), ts.label.tolist())):
            h.update(f"{loan},{y}\n".encode())
    else:
        h.update(np.ascontiguousarray(ts.matrix()).tobytes())
        h.update(np.ascontiguousarray(ts.label).tobytes())
    return h.hexdigest()[:16]
