"""The stream's scorer (udfs/scorer.py) serving the API: the registry's champion, validated and hot-reloaded alike.

One :class:`udfs.scorer.Scorer` per process, built from the parameters the job gives its UDF
(jobs/params.py ``scorer_parameters``, udfs/scorer.py ``scorer_from_parameters``): the same registry, poll
interval, alert threshold (reason codes are given from it on), model size cap and number of reason codes.
A champion that fails to load (or whose file does not match its recorded SHA-256) leaves the last good model
serving, as in the stream. Unlike the stream's, the API's scorer does not read the registry while it scores:
the app's upkeep thread polls it (:meth:`ChampionModel.refresh`), so a slow registry or a new model being
loaded never holds up a request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from contracts.features import FEATURE_NAMES
from loanrisk.settings import Settings
from jobs.params import scorer_parameters
from udfs.scorer import Scorer, scorer_from_parameters


def scorer_from_settings(settings: Settings, clock: Callable[[], float] = time.monotonic) -> Scorer:
    """The stream's scorer with the stream's parameters (the job's builder: registry, poll interval, alert
    threshold, size cap); it never reads the registry while scoring: the upkeep thread polls it."""
    return scorer_from_parameters(scorer_parameters(settings).get, FEATURE_NAMES, clock=clock, poll_on_score=False)


class ChampionModel:
    """A Scorer shared by the request threads (scoring reads the current model once per call) and polled by one."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self._polling = threading.Lock()

    @property
    def version(self) -> str | None:
        """The version scoring now (None while no version loads)."""
        return self.scorer.model_version

    @property
    def last_error(self) -> str | None:
        """Why the champion is not the model scoring, or why none loads (None when all is well)."""
        return self.scorer.last_reload_error

    def score(self, rows: list[list[float]]) -> tuple[np.ndarray, str | None, list[str | None]]:
        """(probabilities, model version, reason codes) for rows of every feature column (FEATURE_NAMES order)."""
        X = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))
        return self.scorer.score_matrix(X)

    def refresh(self) -> None:
        """Read the champion pointer if the poll interval has passed, and load a new champion (one poll at a time)."""
        with self._polling:
            self.scorer.poll_if_due()
