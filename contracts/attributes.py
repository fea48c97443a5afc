"""Extra application attributes a lender holds (credit-bureau facts and the like), declared here and nowhere else.

Each attribute becomes, without another edit: a nullable field at the end of the ``loan_application``
contract (so the producer's validation, the Java ``parse_event`` spec, the raw lake table, the scoring API's
schema, the warehouse DDL and docs/EVENTS.md carry it); when it is not PII, a model feature of the same name
(contracts/features.py), computed in Flink SQL and in Python, written with every score, read by training and
taken by the scorer; and the trailing column it adds to the lake, serving and warehouse tables it reaches.

Attributes are optional: an event without one is valid (old producers, sources that do not hold it, the
synthetic generator), and its feature is then null. A null feature is never invented downstream: the
lake keeps NULL, and a model imputes its own training mean for it (the scorer fills a null with the
model's ``feature_reference``, the training mean, and every exported model starts with a mean imputer
fitted on the same rows, so both give the same value). Absence is therefore "unknown", not zero: an
attribute whose absence means something definite (no delinquency on record) keeps that meaning only
where the source sends a value for it.

A PII attribute is pseudonymised like every PII field and is never a model feature. A non-PII attribute
is a feature and must be a number (``int``, ``long`` or ``double``); its ``direction`` is the sign credit
sense demands of its effect (contracts/features.py), declared only where the definition leaves no doubt.
Adding an attribute adds trailing columns to existing tables: ``riskctl job submit`` adds them to the lake
and the serving database, the warehouse loader to Snowflake (docs/EVENTS.md, "Application attributes").
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.schema import Field, LogicalType

NUMERIC_TYPES: tuple[LogicalType, ...] = ("int", "long", "double")


@dataclass(frozen=True)
class Attribute:
    """One optional application attribute: name, type, unit, bounds, PII marking and, as a feature, its direction."""

    name: str
    type: LogicalType
    doc: str
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    pii: bool = False
    direction: int = 0

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"attribute {self.name!r}: names are lower-case identifiers (snake_case)")
        if not self.pii and self.type not in NUMERIC_TYPES:
            raise ValueError(f"attribute {self.name}: a non-PII attribute is a model feature and must be one of "
                             f"{', '.join(NUMERIC_TYPES)}, not {self.type!r}; mark it pii=True to keep it out of models")
        if self.pii and self.direction:
            raise ValueError(f"attribute {self.name}: a PII attribute is never a feature, so it has no direction")
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"attribute {self.name}: direction must be -1, 0 or 1, not {self.direction!r}")

    @property
    def is_feature(self) -> bool:
        """Whether models may use it (every non-PII attribute)."""
        return not self.pii

    def field(self) -> Field:
        """The attribute as a contract field: always nullable."""
        return Field(self.name, self.type, self.doc, nullable=True, pii=self.pii, unit=self.unit,
                     minimum=self.minimum, maximum=self.maximum)


def _count(name: str, doc: str, direction: int = 0) -> Attribute:
    return Attribute(name, "int", doc, unit="count", minimum=0, direction=direction)


def _months(name: str, doc: str) -> Attribute:
    return Attribute(name, "int", doc, unit="months", minimum=0, maximum=1200)


# Credit-bureau facts known when the application is made (Lending Club's application data holds them all).
APPLICATION_ATTRIBUTES: tuple[Attribute, ...] = (
    _count("open_credit_lines", "Open credit lines on the applicant's credit file."),
    _count("total_credit_lines", "Credit lines ever opened on the credit file."),
    _count("accounts_opened_24m", "Accounts opened in the past 24 months."),
    Attribute("credit_history_years", "int", "Years since the applicant's earliest credit line.", unit="years",
              minimum=0, maximum=100),
    _months("months_since_last_delinquency", "Months since the most recent delinquency; null when none is on "
            "record or the lender does not hold it."),
    _months("months_since_last_inquiry", "Months since the most recent credit inquiry; null when none is on "
            "record or the lender does not hold it."),
    _count("historical_failures_to_pay", "Accounts ever charged off or sent to collection (historical failures "
           "to pay).", direction=1),
    _count("collections_12m", "Collections in the past 12 months, medical ones excluded.", direction=1),
    _count("accounts_delinquent_now", "Accounts on which the applicant is delinquent now.", direction=1),
    _count("accounts_30d_past_due", "Accounts 30 days past due now.", direction=1),
    _count("public_record_bankruptcies", "Bankruptcies in the public record.", direction=1),
    _count("tax_liens", "Tax liens in the public record.", direction=1),
    Attribute("accounts_never_delinquent_share", "double", "Share of the applicant's accounts never delinquent.",
              unit="percent", minimum=0, maximum=100),
    _count("credit_cards_carrying_balance", "Credit cards carrying a balance now."),
    _count("mortgage_accounts", "Mortgage accounts on the credit file."),
)


def check_names(attributes: tuple[Attribute, ...], taken: list[str]) -> None:
    """ValueError when two attributes share a name or one takes the name of a field or feature already declared."""
    names = [a.name for a in attributes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    clashes = sorted(set(names) & set(taken))
    if repeated or clashes:
        raise ValueError(f"application attributes: repeated {repeated or '-'}; already declared elsewhere "
                         f"{clashes or '-'} (contracts/attributes.py)")
