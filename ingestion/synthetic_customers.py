"""Synthetic customers and their loans, plus the hidden default propensity both sources share.

A customer has observed fields (what an application shows: income, debts, credit lines, history)
and latent traits the lender never sees: ``risk_trait`` (financial discipline, partly visible through
delinquencies, utilisation and inquiries), ``income_volatility`` (high for gig and self-employed
work, visible only later in salary credits) and ``spend_ratio`` (visible only in spending). The
12-month default propensity ``latent_pd`` mixes both, so application features predict default
partly and behaviour adds to it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from ingestion.fake_identities import account_number, person, stable_int

REGION_WEIGHTS = {"northeast": 0.15, "midwest": 0.17, "south": 0.30, "west": 0.18, "india": 0.20}
EMPLOYMENT_WEIGHTS = {"salaried": 0.55, "self_employed": 0.14, "gig": 0.14, "retired": 0.10, "unemployed": 0.07}
# Median gross annual income (USD-equivalent) and log-sd per employment type.
_INCOME = {"salaried": (62_000, 0.45), "self_employed": (70_000, 0.70), "gig": (34_000, 0.45),
           "retired": (38_000, 0.40), "unemployed": (16_000, 0.50)}
VOLATILITY_RANGE = {"salaried": (0.02, 0.05), "retired": (0.0, 0.02), "self_employed": (0.25, 0.50),
               "gig": (0.35, 0.70), "unemployed": (0.40, 0.80)}
# Minor units per USD-equivalent unit of purchasing power (INR: paise, at a purchasing-power rate).
MINOR_PER_USD_EQ = {"USD": 100.0, "INR": 2_700.0}
_PRODUCTS = {"personal": 0.60, "auto": 0.22, "home": 0.10, "business": 0.08}
_PURPOSES = {"personal": (("debt_consolidation", 0.5), ("credit_card", 0.2), ("home_improvement", 0.1),
                          ("major_purchase", 0.08), ("medical", 0.05), ("other", 0.07)),
             "auto": (("car", 1.0),), "home": (("house", 1.0),), "business": (("small_business", 1.0),)}
_TERMS = {"personal": (36, 36, 36, 60), "auto": (36, 48, 60, 72), "home": (180, 240, 360, 360),
          "business": (12, 24, 36, 60)}
_GRADE_RATE = {"A": 7.0, "B": 10.5, "C": 14.0, "D": 18.5, "E": 22.5, "F": 26.0, "G": 29.5}
_INTERCEPT = -5.6


@dataclass(frozen=True, slots=True)
class Customer:
    """A borrower: observed application fields, PII, and hidden behaviour traits."""

    customer_id: str
    region: str
    currency: str
    employment_type: str
    emp_length_years: int | None
    annual_income_minor: int
    monthly_debt_minor: int
    revolving_balance_minor: int
    revolving_limit_minor: int
    delinquencies_2y: int
    inquiries_12m: int
    full_name: str
    email: str | None
    phone: str | None
    account_number: str
    risk_trait: float
    income_volatility: float
    spend_ratio: float
    salary_day: int
    # The application attributes (contracts/attributes.py) the source holds, as (name, value) in declared order;
    # those it lacks are left out of the application event.
    attributes: tuple[tuple[str, int | float], ...] = ()


@dataclass(frozen=True, slots=True)
class Loan:
    """A loan application (funded: loan id = application id) and its hidden 12-month default propensity."""

    loan_id: str
    customer_id: str
    origination_ms: int
    product: str
    purpose: str
    amount_minor: int
    term_months: int
    interest_rate: float
    installment_minor: int
    collateral_value_minor: int | None
    grade: str | None
    sub_grade: str | None
    latent_pd: float = 0.0


def rng_for(*parts: object) -> random.Random:
    """An independent, reproducible random stream for ``parts`` (e.g. seed, "customer", index)."""
    return random.Random(stable_int(*parts))


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    """One key of ``weights`` drawn with those weights."""
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's method; ``lam`` is small here)."""
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def amortized_installment(principal_minor: int, annual_rate_pct: float, term_months: int) -> int:
    """The fixed monthly payment of a fully amortising loan, in minor units."""
    r = annual_rate_pct / 1200.0
    if r == 0:
        return max(1, round(principal_minor / term_months))
    return max(1, round(principal_minor * r / (1 - (1 + r) ** -term_months)))


def draw_customer(seed: int, index: int, customer_id: str) -> Customer:
    """The ``index``-th synthetic customer of ``seed``; a pure function of its arguments."""
    rng = rng_for(seed, "customer", index)
    region = _pick(rng, REGION_WEIGHTS)
    currency = "INR" if region == "india" else "USD"
    scale = MINOR_PER_USD_EQ[currency]
    employment = _pick(rng, EMPLOYMENT_WEIGHTS)
    z = rng.gauss(0.0, 1.0)
    median, sd = _INCOME[employment]
    income = median * math.exp(rng.gauss(0.0, sd) - 0.15 * z)
    lo, hi = VOLATILITY_RANGE[employment]
    emp_length = None if employment in ("unemployed", "retired") else min(10, int(rng.expovariate(1 / 4.5)))
    dti = min(0.6, max(0.0, rng.betavariate(2.0, 9.0) + 0.04 * z))
    limit = 0.0 if rng.random() < 0.08 else income * rng.uniform(0.05, 0.5)
    util = _sigmoid(-0.7 + 0.9 * z + rng.gauss(0.0, 0.8)) if limit else 0.0
    contact = person(customer_id, region)
    return Customer(
        customer_id=customer_id, region=region, currency=currency, employment_type=employment,
        emp_length_years=emp_length, annual_income_minor=max(1, round(income * scale)),
        monthly_debt_minor=round(dti * income / 12 * scale),
        revolving_balance_minor=round(util * limit * scale), revolving_limit_minor=round(limit * scale),
        delinquencies_2y=_poisson(rng, 0.2 * math.exp(0.9 * z)),
        inquiries_12m=_poisson(rng, 1.0 * math.exp(0.35 * z)),
        full_name=contact.full_name, email=contact.email, phone=contact.phone,
        account_number=account_number(customer_id, region),
        risk_trait=z, income_volatility=rng.uniform(lo, hi),
        spend_ratio=min(1.2, max(0.35, 0.62 + 0.08 * z + rng.gauss(0.0, 0.09))),
        salary_day=rng.choice((1, 1, 15, 25, 25, 28)) if employment == "salaried" else rng.randint(1, 28),
    )


def lender_grade(customer: Customer, loan_to_income: float, loan_to_value: float, rng: random.Random) -> str:
    """The lender's grade: a noisy score of what the application shows (never the hidden traits)."""
    util = customer.revolving_balance_minor / customer.revolving_limit_minor if customer.revolving_limit_minor else 0
    dti = customer.monthly_debt_minor / max(1, customer.annual_income_minor / 12)
    score = (2.5 * dti + 1.2 * util + 0.35 * min(customer.delinquencies_2y, 5) + 0.12 * min(customer.inquiries_12m, 10)
             + 0.8 * min(loan_to_income, 1.5) + 1.5 * max(loan_to_value - 0.85, 0.0)
             - 0.04 * (customer.emp_length_years or 0) + rng.gauss(0.0, 0.45))
    cuts = (0.45, 0.85, 1.2, 1.6, 2.0, 2.5)
    return "ABCDEFG"[sum(score > c for c in cuts)]


def draw_loan(seed: int, index: int, customer: Customer, loan_id: str, origination_ms: int) -> Loan:
    """The loan the ``index``-th customer applies for, priced by the lender's grade."""
    rng = rng_for(seed, "loan", index)
    scale = MINOR_PER_USD_EQ[customer.currency]
    income = customer.annual_income_minor / scale
    weights = dict(_PRODUCTS)
    if customer.employment_type == "self_employed":
        weights["business"] = 0.35
    if customer.employment_type in ("unemployed", "retired"):
        weights["business"] = 0.01
        weights["home"] = 0.04
    product = _pick(rng, weights)
    purposes = _PURPOSES[product]
    purpose = rng.choices([p for p, _ in purposes], weights=[w for _, w in purposes])[0]
    collateral: float | None = None
    if product == "personal":
        amount = min(40_000.0, max(1_000.0, income * rng.uniform(0.05, 0.4)))
    elif product == "auto":
        amount = max(5_000.0, income * rng.uniform(0.2, 0.7))
        collateral = amount / rng.uniform(0.6, 1.15)
    elif product == "home":
        amount = max(60_000.0, income * rng.uniform(2.0, 5.0))
        collateral = amount / rng.uniform(0.5, 0.97)
    else:
        amount = max(5_000.0, income * rng.uniform(0.1, 0.8))
    term = rng.choice(_TERMS[product])
    ltv = amount / collateral if collateral else 0.0
    grade = lender_grade(customer, amount / income, ltv, rng)
    rate = _GRADE_RATE[grade] + {"home": -3.5, "auto": -1.5}.get(product, 0.0) + rng.gauss(0.0, 0.6)
    rate = round(min(35.0, max(2.5, rate)), 2)
    amount_minor = round(amount * scale / 100) * 100
    loan = Loan(
        loan_id=loan_id, customer_id=customer.customer_id, origination_ms=origination_ms, product=product,
        purpose=purpose, amount_minor=amount_minor, term_months=term, interest_rate=rate,
        installment_minor=amortized_installment(amount_minor, rate, term),
        collateral_value_minor=round(collateral * scale) if collateral else None,
        grade=grade, sub_grade=f"{grade}{rng.randint(1, 5)}",
    )
    return replace(loan, latent_pd=latent_pd(customer, loan))


def latent_pd(customer: Customer, loan: Loan) -> float:
    """The hidden probability that distress starts within the loan's first year.

    Observed part: debt and installment burden, utilisation, delinquencies, inquiries, job tenure,
    loan-to-value. Hidden part: risk_trait, income volatility and overspending.
    """
    monthly = max(1.0, customer.annual_income_minor / 12)
    dti = customer.monthly_debt_minor / monthly
    iti = loan.installment_minor / monthly
    util = customer.revolving_balance_minor / customer.revolving_limit_minor if customer.revolving_limit_minor else 0
    ltv = loan.amount_minor / loan.collateral_value_minor if loan.collateral_value_minor else 0.0
    logit = (_INTERCEPT + 2.8 * dti + 4.5 * min(iti, 0.5) + 1.4 * util + 0.4 * min(customer.delinquencies_2y, 5)
             + 0.12 * min(customer.inquiries_12m, 10) - 0.06 * (customer.emp_length_years or 0)
             + 3.0 * max(ltv - 0.85, 0.0) - (0.6 if loan.collateral_value_minor else 0.0)
             + 3.6 * customer.income_volatility + 5.0 * (customer.spend_ratio - 0.62) + 0.5 * customer.risk_trait)
    return _sigmoid(logit)
