"""Prometheus metrics of the scoring API (served at /metrics), in a registry of its own per app."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from scoring_api.champion import ChampionModel

# Request latency buckets (seconds): the target is a p99 in the tens of milliseconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _ModelCollector(Collector):
    """The scoring model as the scorer reports it at scrape time: version, loaded or not, load failures."""

    def __init__(self, model: Callable[[], ChampionModel | None]) -> None:
        self._model = model

    def collect(self) -> Iterator[Metric]:
        model = self._model()
        version = model.version if model is not None else None
        info = InfoMetricFamily("loanrisk_api_model", "The model version scoring now (empty while none loads).")
        info.add_metric([], {"version": version or ""})
        yield info
        yield GaugeMetricFamily("loanrisk_api_model_loaded", "1 while a model is loaded, else 0.",
                                value=1.0 if version else 0.0)
        scorer = model.scorer if model is not None else None
        yield CounterMetricFamily("loanrisk_api_model_load_failures", "Registry versions that failed to load "
                                  "(the last good model keeps serving).",
                                  value=float(scorer.model_load_failures if scorer else 0))
        yield CounterMetricFamily("loanrisk_api_registry_poll_failures", "Champion pointer reads that failed.",
                                  value=float(scorer.registry_poll_failures if scorer else 0))


class ApiMetrics:
    """Requests by route and status, latency by route, errors by reason, and the model's state."""

    def __init__(self, model: Callable[[], ChampionModel | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("loanrisk_api_requests", "Requests answered, by route and status.",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("loanrisk_api_request_seconds", "Time from request to answer, by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("loanrisk_api_errors", "Requests (or batch items) not scored, by reason: the error "
                              "code, or the broken contract rule's kind for invalid applications.",
                              ["reason"], registry=self.registry)
        self.scored = Counter("loanrisk_api_scored_applications", "Applications scored, by where their behaviour "
                              "features came from.", ["behaviour"], registry=self.registry)
        self.published = Counter("loanrisk_api_published_applications", "Applications published to the "
                                 "loan-applications topic.", registry=self.registry)
        self.registry.register(_ModelCollector(model))

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)
