"""The three input events and the dead-letter record, each defined once (schema version 1).

Conventions for every event:
- JSON objects, UTF-8, one per Kafka message, keyed by ``customer_id`` so a customer's events
  stay ordered within one partition.
- ``event_time``: when the fact happened in the source system (ISO-8601 UTC, e.g.
  ``2018-01-14T09:30:00.000Z``); watermarks and windows use it. Ingestion time is Kafka's record
  timestamp and is kept separately by the pipeline.
- Money: integer minor units (cents, paise) plus an ISO-4217 ``currency``; never floats.
- ``schema_version``: the contract version the producer wrote; see docs/EVENTS.md for evolution.
"""

from __future__ import annotations

from contracts.attributes import APPLICATION_ATTRIBUTES, check_names
from contracts.schema import EventContract, Field

SCHEMA_VERSION = 1
CURRENCIES = ("USD", "EUR", "GBP", "INR")
PRODUCTS = ("personal", "auto", "home", "business")
REGIONS = ("northeast", "midwest", "south", "west", "india")
EMPLOYMENT_TYPES = ("salaried", "self_employed", "gig", "retired", "unemployed")
GRADES = ("A", "B", "C", "D", "E", "F", "G")
SOURCES = ("synthetic", "lendingclub", "plaid", "razorpayx")

_ENVELOPE = (
    Field("event_id", "string", "Globally unique id of this event; repeats are duplicates and are dropped."),
    Field("schema_version", "int", "Contract version the producer wrote.", minimum=1, maximum=SCHEMA_VERSION),
    Field("event_time", "timestamp", "When the fact happened in the source system (UTC)."),
    Field("source", "string", "Where the event came from.", choices=SOURCES),
    Field("customer_id", "string", "Pseudonymous customer id; the Kafka key.", identifies_person=True),
)

_APPLICATION_FIELDS = _ENVELOPE + (
    Field("application_id", "string", "Application (and loan) id."),
    Field("full_name", "string", "Applicant's name.", pii=True),
    Field("email", "string", "Applicant's e-mail address.", nullable=True, pii=True),
    Field("phone", "string", "Applicant's phone number.", nullable=True, pii=True),
    Field("product", "string", "Loan product.", choices=PRODUCTS),
    Field("purpose", "string", "Stated purpose (debt_consolidation, car, home_improvement, ...)."),
    Field("region", "string", "Applicant's region.", choices=REGIONS),
    Field("currency", "string", "ISO-4217 currency of every amount in this event.", choices=CURRENCIES),
    Field("amount_minor", "long", "Requested principal.", unit="minor units", minimum=1),
    Field("term_months", "int", "Loan term.", unit="months", minimum=1, maximum=480),
    Field("interest_rate", "double", "Annual interest rate offered.", unit="percent", minimum=0, maximum=100),
    Field("installment_minor", "long", "Scheduled monthly installment.", unit="minor units", minimum=1),
    Field("annual_income_minor", "long", "Stated gross annual income.", unit="minor units", minimum=1),
    Field("monthly_debt_minor", "long", "Existing monthly debt payments (excluding this loan).",
          unit="minor units", minimum=0),
    Field("revolving_balance_minor", "long", "Revolving (card) balance outstanding.", unit="minor units",
          minimum=0),
    Field("revolving_limit_minor", "long", "Total revolving credit limit.", unit="minor units", minimum=0),
    Field("collateral_value_minor", "long", "Collateral value for secured loans; null when unsecured.",
          nullable=True, unit="minor units", minimum=1),
    Field("employment_type", "string", "Employment type.", choices=EMPLOYMENT_TYPES),
    Field("emp_length_years", "int", "Years with the current employer (10 = 10 or more).", nullable=True,
          unit="years", minimum=0, maximum=10),
    Field("delinquencies_2y", "int", "Delinquencies in the past two years.", minimum=0),
    Field("inquiries_12m", "int", "Credit inquiries in the past twelve months.", minimum=0),
    Field("grade", "string", "Lender's grade where the lender assigns one.", nullable=True, choices=GRADES),
    Field("sub_grade", "string", "Lender's sub-grade (A1..G5) where assigned.", nullable=True),
)
check_names(APPLICATION_ATTRIBUTES, [f.name for f in _APPLICATION_FIELDS])

LOAN_APPLICATION = EventContract(
    name="loan_application",
    topic="loan-applications",
    key="customer_id",
    id_field="application_id",
    event_time_field="event_time",
    schema_version=SCHEMA_VERSION,
    doc="A loan application as submitted; the loan id is the application id.",
    # The lender's optional attributes (contracts/attributes.py) are its last fields.
    fields=_APPLICATION_FIELDS + tuple(a.field() for a in APPLICATION_ATTRIBUTES),
)

TRANSACTION = EventContract(
    name="transaction",
    topic="transactions",
    key="customer_id",
    id_field="transaction_id",
    event_time_field="event_time",
    schema_version=SCHEMA_VERSION,
    doc="A booked bank-account transaction (salary, spending, card payment, transfer).",
    fields=_ENVELOPE + (
        Field("transaction_id", "string", "Source transaction id."),
        Field("account_number", "string", "Bank account number.", pii=True),
        Field("kind", "string", "Transaction category.",
              choices=("salary", "spending", "card_payment", "transfer", "other")),
        Field("direction", "string", "credit (money in) or debit (money out).", choices=("credit", "debit")),
        Field("currency", "string", "ISO-4217 currency.", choices=CURRENCIES),
        Field("amount_minor", "long", "Absolute amount.", unit="minor units", minimum=0),
        Field("balance_minor", "long", "Account balance after the transaction, when the source reports it.",
              nullable=True, unit="minor units"),
        Field("counterparty", "string", "Merchant or counterparty name (can be a person's name).", nullable=True,
              pii=True),
    ),
)

REPAYMENT = EventContract(
    name="repayment",
    topic="repayments",
    key="customer_id",
    id_field="repayment_id",
    event_time_field="event_time",
    schema_version=SCHEMA_VERSION,
    doc="The servicing system's record of one scheduled installment: paid, late, partial or missed.",
    fields=_ENVELOPE + (
        Field("repayment_id", "string", "Id of this installment record."),
        Field("loan_id", "string", "The loan (application id) this installment belongs to."),
        Field("installment_no", "int", "1-based installment number.", minimum=1),
        Field("due_date", "date", "Date the installment was due."),
        Field("paid_date", "date", "Date it was paid; null when missed.", nullable=True),
        Field("currency", "string", "ISO-4217 currency.", choices=CURRENCIES),
        Field("amount_due_minor", "long", "Amount due.", unit="minor units", minimum=0),
        Field("amount_paid_minor", "long", "Amount paid.", unit="minor units", minimum=0),
        Field("days_past_due", "int", "Days past due as of event_time (0 when paid on time): for a paid "
              "record, days from the oldest unpaid due date to paid_date; for a missed or partial record, days "
              "since the oldest unpaid installment's due date.", unit="days", minimum=0),
    ),
)

DEAD_LETTER = EventContract(
    name="dead_letter",
    topic="dead-letters",
    key="source_topic",
    id_field="dlq_id",
    event_time_field="received_at",
    schema_version=SCHEMA_VERSION,
    doc="An input message that failed validation, with the reason; PII inside payload is already hashed.",
    fields=(
        Field("dlq_id", "string", "Deterministic id: hash of topic, partition and offset."),
        Field("source_topic", "string", "Topic the message was read from."),
        Field("source_partition", "int", "Kafka partition."),
        Field("source_offset", "long", "Kafka offset."),
        Field("reason", "string", "First validation rule the message broke (e.g. invalid_json, "
                                  "missing:amount_minor, range:amount_minor)."),
        # It still names the customer (their id, the pseudonyms of their PII): the erasure matches it.
        Field("payload", "string", "The message with PII fields replaced by keyed hashes (truncated to 64 KiB).",
              identifies_person=True),
        Field("payload_bytes", "int", "Size of the original message.", unit="bytes"),
        Field("received_at", "timestamp", "Kafka record timestamp (ingestion time)."),
    ),
)

INPUT_EVENTS: tuple[EventContract, ...] = (LOAN_APPLICATION, TRANSACTION, REPAYMENT)
ALL_CONTRACTS: tuple[EventContract, ...] = INPUT_EVENTS + (DEAD_LETTER,)


def contract_for_topic(topic: str) -> EventContract:
    """The input contract whose default topic is ``topic``."""
    for c in ALL_CONTRACTS:
        if c.topic == topic:
            return c
    raise KeyError(f"no contract for topic {topic!r}")
