"""The synthetic source: a deterministic population of borrowers as paced Kafka messages, plus its ground truth.

    config = GeneratorConfig(seed=7, customers=1000, rate=2000)
    for message in generate(config): ...               # ProducedEvent(topic, key, value_bytes, ...)
    SyntheticWorld(config).outcomes()                  # loan_id, customer_id, origination_time, defaulted, ...
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from contracts.outcomes import DEFAULT_DEFINITION, DefaultDefinition, outcomes_frame
from ingestion.anomalies import NO_ANOMALIES, AnomalyConfig, with_anomalies
from ingestion.behaviour import BehaviourConfig, Event, latent_onset, simulate
from ingestion.merge import merge_lives
from ingestion.pacing import Clock, Sleep, paced
from ingestion.fake_identities import stable_int
from ingestion.synthetic_customers import Customer, Loan, draw_customer, draw_loan, rng_for
from ingestion.timeutil import MS_PER_DAY, from_ms, parse_instant
from ingestion.wire import DEFAULT_TOPICS, ProducedEvent


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that shapes the synthetic stream; equal configs give byte-identical streams.

    ``customers`` None means an endless stream (applications keep arriving). ``rate`` caps events per
    wall-clock second; ``speedup`` paces by event time (86400 = one simulated day per second); both
    None = as fast as possible. Event time starts at ``start`` (simulated business time).
    """

    seed: int = 42
    customers: int | None = None
    start: str = "2018-01-01T00:00:00Z"
    applications_per_day: float = 40.0
    history_months: int = 3
    observe_months: int = 13
    spend_txn_per_month: float = 10.0
    rate: float | None = None
    speedup: float | None = None
    anomalies: AnomalyConfig = NO_ANOMALIES
    topics: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    source: str = "synthetic"

    def __post_init__(self) -> None:
        if self.customers is not None and self.customers < 1:
            raise ValueError("customers must be >= 1 (or None for an endless stream)")
        if self.applications_per_day <= 0:
            raise ValueError("applications_per_day must be > 0")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be > 0 events per second")
        if self.speedup is not None and self.speedup <= 0:
            raise ValueError("speedup must be > 0")
        if self.history_months < 0 or self.observe_months < 1:
            raise ValueError("history_months must be >= 0 and observe_months >= 1")

    @property
    def behaviour(self) -> BehaviourConfig:
        """The per-borrower simulation settings."""
        return BehaviourConfig(history_months=self.history_months, observe_months=self.observe_months,
                               spend_txn_per_month=self.spend_txn_per_month, source=self.source)


class SyntheticWorld:
    """The population behind a config: borrowers, their loans, the event stream and the truth about them."""

    def __init__(self, config: GeneratorConfig):
        self.config = config

    def participants(self) -> Iterator[tuple[Customer, Loan]]:
        """(customer, loan) in origination order; endless when ``config.customers`` is None."""
        cfg = self.config
        arrivals = rng_for(cfg.seed, "arrivals")
        t = float(parse_instant(cfg.start))
        for i in itertools.count() if cfg.customers is None else range(cfg.customers):
            t += arrivals.expovariate(cfg.applications_per_day) * MS_PER_DAY
            customer_id = f"cus_{stable_int(cfg.seed, 'customer_id', i):016x}"
            customer = draw_customer(cfg.seed, i, customer_id)
            loan_id = f"app_{stable_int(cfg.seed, 'loan_id', i):016x}"
            yield customer, draw_loan(cfg.seed, i, customer, loan_id, int(t))

    def events(self) -> Iterator[Event]:
        """Clean events ``(event_time_ms, contract_name, dict)`` in event-time order."""
        return merge_lives(self.participants(), self.config.behaviour, self.config.seed)

    def messages(self, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> Iterator[ProducedEvent]:
        """The paced Kafka messages, anomalies included."""
        cfg = self.config
        stream = with_anomalies(self.events(), cfg.anomalies, cfg.seed, cfg.topics)
        return paced(stream, cfg.rate, cfg.speedup, clock=clock, sleep=sleep)

    def _finite(self) -> Iterator[tuple[Customer, Loan]]:
        if self.config.customers is None:
            raise ValueError("ground truth needs a finite population: set GeneratorConfig.customers")
        return self.participants()

    def latent_labels(self) -> pd.DataFrame:
        """loan_id, customer_id, latent_pd (hidden 12-month distress probability), distress_onset (installment or NA)."""
        rows = []
        for customer, loan in self._finite():
            onset = latent_onset(customer, loan, self.config.behaviour, self.config.seed)
            rows.append((loan.loan_id, customer.customer_id, loan.latent_pd, onset))
        frame = pd.DataFrame(rows, columns=["loan_id", "customer_id", "latent_pd", "distress_onset"])
        frame["distress_onset"] = frame["distress_onset"].astype("Int64")
        return frame

    def outcomes(self, as_of: datetime | None = None,
                 definition: DefaultDefinition = DEFAULT_DEFINITION) -> pd.DataFrame:
        """loan_id, customer_id, origination_time, defaulted, first_default_date, mature (contracts.outcomes rule)."""
        return outcomes_for(self._finite(), self.config.behaviour, self.config.seed, as_of, definition)


def outcomes_for(participants: Iterator[tuple[Customer, Loan]], cfg: BehaviourConfig, seed: int,
                 as_of: datetime | None = None,
                 definition: DefaultDefinition = DEFAULT_DEFINITION) -> pd.DataFrame:
    """Labels of simulated loans from their simulated repayment records (transactions simulated, not built)."""
    loans, repayments = [], []
    for customer, loan in participants:
        loans.append((loan.loan_id, customer.customer_id, from_ms(loan.origination_ms)))
        for t, kind, event in simulate(customer, loan, cfg, seed, emit_transactions=False):
            if kind == "repayment":
                repayments.append((loan.loan_id, from_ms(t), event["days_past_due"]))
    return outcomes_frame(pd.DataFrame(loans, columns=["loan_id", "customer_id", "origination_time"]),
                          pd.DataFrame(repayments, columns=["loan_id", "event_time", "days_past_due"]),
                          as_of, definition)


def generate(config: GeneratorConfig, *, clock: Clock = time.monotonic,
             sleep: Sleep = time.sleep) -> Iterator[ProducedEvent]:
    """The synthetic stream as Kafka messages, paced by ``config.rate`` / ``config.speedup``."""
    return SyntheticWorld(config).messages(clock=clock, sleep=sleep)


def latent_default_labels(config: GeneratorConfig) -> pd.DataFrame:
    """The hidden default propensity and distress onset per loan (see SyntheticWorld.latent_labels)."""
    return SyntheticWorld(config).latent_labels()


def outcome_truth(config: GeneratorConfig, as_of: datetime | None = None,
                  definition: DefaultDefinition = DEFAULT_DEFINITION) -> pd.DataFrame:
    """loan_id, customer_id, origination_time, defaulted, first_default_date, mature, per contracts.outcomes."""
    return SyntheticWorld(config).outcomes(as_of, definition)
