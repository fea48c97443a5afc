"""Splits: the latest period is held out, CV folds stay in the earlier data and are stratified."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.dataset import from_applications
from models.errors import DatasetError
from models.split import cv_folds, holdout_id, plan
from models.synthetic import toy_applications


def test_latest_month_is_held_out_and_folds_use_earlier_rows_only() -> None:
    ts = from_applications(toy_applications(900, seed=4, months=3), "toy")
    sp = plan(ts, n_splits=5, n_repeats=3, seed=0)
    assert sp.has_holdout and sp.holdout_period == "2018-03"
    assert ts.time.iloc[sp.holdout].min() > ts.time.iloc[sp.dev].max()
    assert len(sp.folds) == 5  # with a holdout, CV is not repeated
    for tr, te in sp.folds:
        assert max(tr.max(), te.max()) < len(sp.dev) and not set(tr) & set(te)
        assert ts.label[sp.dev][te].sum() > 0


def test_single_cohort_gets_repeated_stratified_folds() -> None:
    ts = from_applications(toy_applications(600, seed=5, months=1), "toy")
    ts_one = ts.subset(np.flatnonzero(ts.time.dt.month == 1))
    sp = plan(ts_one, n_splits=5, n_repeats=2, seed=0)
    assert not sp.has_holdout and len(sp.folds) == 10
    rate = ts_one.prevalence
    for _, te in sp.folds:
        assert abs(ts_one.label[te].mean() - rate) < 0.03  # stratified
    first, second = sp.folds[0][1], sp.folds[5][1]
    assert not np.array_equal(np.sort(first), np.sort(second))  # repeats reshuffle


def test_too_few_positives_for_the_folds_is_refused() -> None:
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    with pytest.raises(DatasetError, match="too few"):
        cv_folds(y, n_splits=5)


def test_holdout_id_depends_on_rows_and_labels() -> None:
    ts = from_applications(toy_applications(100, seed=6), "toy")
    a = holdout_id(ts.subset(np.arange(50)))
    assert a == holdout_id(ts.subset(np.arange(50)[::-1]))  # order does not matter
    assert a != holdout_id(ts.subset(np.arange(1, 51)))


def test_a_month_just_begun_is_joined_by_the_one_before() -> None:
    ts = from_applications(toy_applications(900, seed=4, months=3), "toy")
    extra = toy_applications(10, seed=9).assign(event_time=pd.Timestamp("2018-04-01T06:00:00Z"))
    both = from_applications(pd.concat([toy_applications(900, seed=4, months=3), extra]), "toy")
    sp = plan(both, n_splits=5)
    assert sp.holdout_period == "2018-03..2018-04"
    assert len(sp.holdout) == len(plan(ts, n_splits=5).holdout) + 10
