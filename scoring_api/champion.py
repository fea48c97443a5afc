"""The stream's scorer (udfs/scorer.py) serving the API: the registry's champion, validated and hot-reloaded alike.

One :class:`udfs.scorer.Scorer` per process, built from the settings as the job builds the UDF's
(jobs/params.py ``udf_parameters``): the same registry, poll interval, alert threshold (reason codes are
given from it on), model size cap and number of reason codes. A champion that fails to load (or whose file
does not match its recorded SHA-256) leaves the last good model serving, as in the stream. Unlike the
stream's, the API's scorer does not read the registry while it scores: the app's upkeep thread polls it
(:meth:`ChampionModel.refresh`), so a slow registry or a new model being loaded never holds up a request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from contracts.features import FEATURE_NAMES
from loanrisk.settings import Settings
from udfs.scorer import Scorer


def scorer_from_settings(settings: Settings, clock: Callable[[], float] = time.monotonic) -> Scorer:
    """The stream's scorer on ``settings``' registry, with the stream's poll interval, alert threshold and size cap."""
    s3 = settings.s3
    uri = settings.model.registry(s3)
    endpoint: dict[str, Any] | None = None
    if uri.startswith("s3://"):
        endpoint = {"endpoint": s3.url, "region": s3.region, "access_key_id": s3.access_key_id,
                    "secret_access_key": s3.secret()}
    return Scorer(uri, FEATURE_NAMES, s3=endpoint, poll_interval_s=settings.model.poll_interval_s,
                  alert_threshold=settings.model.alert_threshold, clock=clock, poll_on_score=False,
                  max_model_bytes=settings.model.max_model_bytes)


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
