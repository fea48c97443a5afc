"""One borrower's life as events: the application, bank transactions and repayment records, in time order.

The latent default process: with probability ``loan.latent_pd`` distress starts at some installment
in the first ten months. Up to three months before, spending rises, income dips and payments slip; from
the onset income falls and installments are mostly missed (a missed record is reported five days
after its due date with days past due counted from the oldest unpaid installment), with a small
monthly chance to cure. Outside distress, payments are late when the account cannot cover them,
so volatile income and overspending cause late payments too. Nothing here reads an outcome label.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from contracts.events import SCHEMA_VERSION
from ingestion.synthetic_customers import Customer, Loan, rng_for
from ingestion.timeutil import MS_PER_DAY, MS_PER_HOUR, add_months_ms, iso_date, iso_ms

NET_OF_GROSS = 0.78
LENDER = "LoanRisk Lending"
_MERCHANTS = ("Kroger", "Walmart", "Target", "Amazon", "Shell", "Starbucks", "Costco", "CVS Pharmacy",
              "Uber", "Netflix", "Home Depot", "Comcast", "Whole Foods", "McDonald's", "Landlord rent",
              "Electric utility", "Spotify", "Chipotle", "Best Buy", "Walgreens")
_MERCHANTS_IN = ("BigBasket", "Flipkart", "Swiggy", "Zomato", "Reliance Fresh", "DMart", "Indian Oil",
                 "Jio Recharge", "Airtel", "Ola", "Apollo Pharmacy", "Landlord rent", "BESCOM electricity",
                 "Myntra", "Tata Cliq", "IRCTC", "Paytm Mall", "Croma")
_EMPLOYERS = {"salaried": "Payroll", "retired": "Pension fund", "self_employed": "Client invoice",
              "gig": "Gig platform payout", "unemployed": "Benefits office"}

# Queued cash-flow kind -> (direction, transaction kind, counterparty; None = decided per item).
_CASH_FLOWS: dict[str, tuple[str, str, str | None]] = {
    "salary": ("credit", "salary", None), "spend": ("debit", "spending", None),
    "debt": ("debit", "transfer", "Existing loan servicer"), "card": ("debit", "card_payment", "Credit card"),
    "refund": ("credit", "other", "Merchant refund"),
    "disbursement": ("credit", "transfer", f"{LENDER} disbursement"), "payoff": ("debit", "transfer", "Debt payoff"),
}

Event = tuple[int, str, dict[str, Any]]


@dataclass(frozen=True)
class BehaviourConfig:
    """How much of a borrower's life to simulate and how dense it is."""

    history_months: int = 3
    observe_months: int = 13
    spend_txn_per_month: float = 10.0
    missed_report_days: int = 5
    source: str = "synthetic"


def _uuid(rng: random.Random) -> str:
    """A random UUID-formatted id drawn from ``rng`` (so ids are reproducible)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def application_event(customer: Customer, loan: Loan, event_id: str, source: str) -> dict[str, Any]:
    """The ``loan_application`` event of ``loan``, fields in contract order."""
    return {
        "event_id": event_id, "schema_version": SCHEMA_VERSION, "event_time": iso_ms(loan.origination_ms),
        "source": source, "customer_id": customer.customer_id, "application_id": loan.loan_id,
        "full_name": customer.full_name, "email": customer.email, "phone": customer.phone,
        "product": loan.product, "purpose": loan.purpose, "region": customer.region, "currency": customer.currency,
        "amount_minor": loan.amount_minor, "term_months": loan.term_months, "interest_rate": loan.interest_rate,
        "installment_minor": loan.installment_minor, "annual_income_minor": customer.annual_income_minor,
        "monthly_debt_minor": customer.monthly_debt_minor,
        "revolving_balance_minor": customer.revolving_balance_minor,
        "revolving_limit_minor": customer.revolving_limit_minor,
        "collateral_value_minor": loan.collateral_value_minor, "employment_type": customer.employment_type,
        "emp_length_years": customer.emp_length_years, "delinquencies_2y": customer.delinquencies_2y,
        "inquiries_12m": customer.inquiries_12m, "grade": loan.grade, "sub_grade": loan.sub_grade,
        **dict(customer.attributes),
    }


def distress_onset(loan: Loan, rng: random.Random) -> int | None:
    """The installment number at which distress starts (1..10), or None; drawn from ``latent_pd`` only."""
    return rng.randint(1, 10) if rng.random() < loan.latent_pd else None


class _Life:
    """Mutable state of one simulation run: account balance, arrears, distress and the event heap."""

    def __init__(self, customer: Customer, loan: Loan, cfg: BehaviourConfig, seed: int, emit_transactions: bool):
        self.c, self.loan, self.cfg, self.emit_tx = customer, loan, cfg, emit_transactions
        self.rng = rng_for(seed, "life", customer.customer_id)
        self.net = customer.annual_income_minor / 12 * NET_OF_GROSS
        self.balance = round(self.net * self.rng.uniform(0.3, 1.5))
        self.onset = distress_onset(loan, self.rng)
        self.cured_at: int | None = None
        self.arrears: list[int] = []
        self.heap: list[tuple[int, int, str, int, Any]] = []
        self.seq = 0
        self.merchants = _MERCHANTS_IN if customer.region == "india" else _MERCHANTS

    # -- scheduling -------------------------------------------------------------------------------
    def push(self, t: int, kind: str, amount: int, extra: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, amount, extra))

    def distressed(self, k: int) -> bool:
        """Whether the borrower is in distress at installment ``k`` (after onset, before any cure)."""
        return self.onset is not None and k >= self.onset and (self.cured_at is None or k < self.cured_at)

    def schedule_month(self, m: int, start: int, end: int) -> None:
        """Queue month ``m``'s cash flows (relative to origination) in [start, end)."""
        rng, c = self.rng, self.c
        warning = self.onset is not None and self.onset - 3 <= m < self.onset
        distress = self.onset is not None and m >= self.onset - 1 and (self.cured_at is None or m < self.cured_at)
        income_mult = 0.35 if distress else (0.85 if warning else 1.0)
        day0 = start - start % MS_PER_DAY
        span_days = max(1, (end - day0) // MS_PER_DAY - 1)

        random_ = rng.random

        def at(day: int, hour_lo: int, hour_hi: int) -> int:
            t = day0 + min(day, span_days) * MS_PER_DAY + int((hour_lo + (hour_hi - hour_lo) * random_()) * 3600) * 1000
            return min(max(t, start + 1), end - 1)

        et = c.employment_type
        if et in ("salaried", "retired"):
            if not (distress and et == "salaried" and rng.random() < 0.5):
                amount = self.net * income_mult * (1 + rng.gauss(0, 0.01 if et == "salaried" else 0.002))
                self.push(at(max(1, c.salary_day + rng.choice((-1, 0, 0, 0, 1))), 6, 9), "salary", round(amount))
        elif et == "unemployed":
            if rng.random() < 0.8:
                self.push(at(10, 8, 12), "salary", round(self.net * income_mult * rng.uniform(0.6, 1.0)))
        else:
            n = 1 + min(2, int(rng.expovariate(1.0))) if et == "self_employed" else 3 + int(rng.expovariate(0.5))
            vol = c.income_volatility
            total = self.net * income_mult * math.exp(rng.gauss(-vol * vol / 2, vol))
            weights = [rng.expovariate(1.0) for _ in range(n)]
            for w in weights:
                self.push(at(1 + int(29 * random_()), 7, 22), "salary", round(total * w / sum(weights)))
        spend_mult = 1.25 if warning else (0.8 if distress else 1.0)
        n_spend = max(1, round(rng.gauss(self.cfg.spend_txn_per_month, math.sqrt(self.cfg.spend_txn_per_month))))
        total = c.spend_ratio * self.net * spend_mult * math.exp(rng.gauss(0, 0.12))
        weights = [rng.expovariate(1.0) for _ in range(n_spend)]
        for w in weights:
            self.push(at(1 + int(29 * random_()), 8, 22), "spend", round(total * w / sum(weights)),
                      rng.choice(self.merchants))
        if c.monthly_debt_minor > 0:
            self.push(at(2, 5, 7), "debt", c.monthly_debt_minor)
        if c.revolving_balance_minor > 0:
            self.push(at(20, 9, 18), "card", round(c.revolving_balance_minor * rng.uniform(0.03, 0.15)))
        if rng.random() < 0.1:
            self.push(at(rng.randint(1, 29), 9, 20), "refund", round(self.net * rng.uniform(0.005, 0.05)))
        if 1 <= m <= self.loan.term_months:
            self.push(start, "due", self.loan.installment_minor, m)

    # -- event builders ---------------------------------------------------------------------------
    def transaction(self, t: int, kind: str, direction: str, amount: int, counterparty: str | None) -> Event | None:
        """Book a transaction; the event is built only when transactions are emitted (ids drawn either way)."""
        self.balance += amount if direction == "credit" else -amount
        event_id, txn_bits = _uuid(self.rng), self.rng.getrandbits(64)
        if not self.emit_tx:
            return None
        c = self.c
        return (t, "transaction", {
            "event_id": event_id, "schema_version": SCHEMA_VERSION, "event_time": iso_ms(t),
            "source": self.cfg.source, "customer_id": c.customer_id,
            "transaction_id": f"txn_{txn_bits:016x}", "account_number": c.account_number,
            "kind": kind, "direction": direction, "currency": c.currency, "amount_minor": amount,
            "balance_minor": self.balance, "counterparty": counterparty,
        })

    def repayment(self, t: int, k: int, due_ms: int, paid: bool, amount_paid: int, dpd: int) -> Event:
        c, loan = self.c, self.loan
        return (t, "repayment", {
            "event_id": _uuid(self.rng), "schema_version": SCHEMA_VERSION, "event_time": iso_ms(t),
            "source": self.cfg.source, "customer_id": c.customer_id,
            "repayment_id": f"{loan.loan_id}-{k:03d}", "loan_id": loan.loan_id, "installment_no": k,
            "due_date": iso_date(due_ms), "paid_date": iso_date(t) if paid else None, "currency": c.currency,
            "amount_due_minor": loan.installment_minor, "amount_paid_minor": amount_paid,
            "days_past_due": dpd,
        })

    def on_due(self, t: int, k: int) -> None:
        """Decide installment ``k``: on time, late, partial or missed; queue what follows."""
        rng, due = self.rng, self.loan.installment_minor
        if self.distressed(k):
            self.arrears.append(t)
            if rng.random() < 0.15 and self.balance > 0:
                self.push(t + rng.randint(1, 4) * MS_PER_DAY + rng.randint(0, 8) * MS_PER_HOUR, "partial",
                          max(1, round(min(self.balance * 0.5, due * 0.6))), (k, t))
            else:
                self.push(t + self.cfg.missed_report_days * MS_PER_DAY, "missed", 0, (k, t))
            if rng.random() < 0.08:
                self.cured_at = k + 1
            return
        owed = due * (1 + len(self.arrears))
        warning = self.onset is not None and self.onset - 3 <= k < self.onset
        p_late = 0.03 + 0.3 * self.loan.latent_pd + (0.45 if warning else 0.0)
        if self.balance >= owed and rng.random() >= p_late:
            delay = rng.randint(0, 6 * 3600) * 1000
        else:
            delay = rng.randint(2, 25) * MS_PER_DAY + rng.randint(0, 10) * MS_PER_HOUR
        self.push(t + delay, "pay", owed, (k, t))

    def run(self) -> Iterator[Event]:
        """All events of this borrower in time order."""
        loan, cfg, rng = self.loan, self.cfg, self.rng
        orig = loan.origination_ms
        starts = [add_months_ms(orig, m) for m in range(-cfg.history_months, cfg.observe_months + 1)]
        self.push(orig, "application", 0)
        if loan.product in ("personal", "business"):
            pay_in = orig + rng.randint(1, 3) * MS_PER_DAY
            self.push(pay_in, "disbursement", loan.amount_minor)
            if loan.purpose in ("debt_consolidation", "credit_card"):
                self.push(pay_in + rng.randint(1, 5) * MS_PER_DAY, "payoff", loan.amount_minor)
        for i, m in enumerate(range(-cfg.history_months, cfg.observe_months)):
            start, end = starts[i], starts[i + 1]
            self.schedule_month(m, start, end)
            heap = self.heap
            while heap and heap[0][0] < end:
                t, _, kind, amount, extra = heapq.heappop(heap)
                if kind in _CASH_FLOWS:
                    event = self.cash_flow(t, kind, amount, extra)
                    if event is not None:
                        yield event
                else:
                    yield from self.handle(t, kind, amount, extra)

    def cash_flow(self, t: int, kind: str, amount: int, extra: Any) -> Event | None:
        """Book one queued cash flow (salary, spending, ...); spending halves while the account is overdrawn."""
        direction, label, counterparty = _CASH_FLOWS[kind]
        if kind == "spend":
            counterparty = extra
            if self.balance < 0:
                amount //= 2
        elif kind == "salary":
            counterparty = _EMPLOYERS[self.c.employment_type]
        return self.transaction(t, label, direction, amount, counterparty) if amount > 0 else None

    def handle(self, t: int, kind: str, amount: int, extra: Any) -> list[Event]:
        """Turn one queued loan item (application, due date, payment) into events, queueing follow-ups."""
        if kind == "application":
            return [(t, "loan_application", application_event(self.c, self.loan, _uuid(self.rng), self.cfg.source))]
        if kind == "due":
            self.on_due(t, extra)
            return []
        k, due_ms = extra  # pay, partial or missed
        oldest = self.arrears[0] if self.arrears else due_ms
        dpd = max(0, (t - oldest) // MS_PER_DAY)
        if kind == "pay":
            self.arrears.clear()
        out = []
        if amount:
            event = self.transaction(t, "transfer", "debit", amount, f"{LENDER} loan repayment")
            if event is not None:
                out.append(event)
        out.append(self.repayment(t, k, due_ms, kind != "missed", amount, dpd))
        return out


def latent_onset(customer: Customer, loan: Loan, cfg: BehaviourConfig, seed: int) -> int | None:
    """The installment at which this borrower's distress starts (None: never), as the simulation draws it."""
    return _Life(customer, loan, cfg, seed, emit_transactions=False).onset


def simulate(customer: Customer, loan: Loan, cfg: BehaviourConfig, seed: int,
             emit_transactions: bool = True) -> Iterator[Event]:
    """``(event_time_ms, contract_name, event)`` for one borrower in time order.

    Deterministic in (seed, customer, loan, cfg). With ``emit_transactions=False`` balances are still
    simulated (they drive lateness) but only the application and repayment events are yielded.
    """
    return _Life(customer, loan, cfg, seed, emit_transactions).run()
