"""The lake and serving tables the job writes, each declared once; contracts/table_sql.py renders their DDL.

A lake table is an Iceberg table partitioned by a date column; its columns are what Flink writes and what
the warehouse copies to Snowflake (warehouse/ddl.py). A serving table is a PostgreSQL table the job upserts
through a Flink JDBC table. Where a lake table keeps the history of a serving table, it is derived from it
(:func:`lake_history`), so a column added to the serving table reaches the lake and Snowflake as well.

Names, types and column order are those of the tables already on disk: Iceberg and PostgreSQL keep
existing tables (``CREATE TABLE IF NOT EXISTS``), so a change here must be a deliberate schema migration.
The one change made for you: the columns of the application attributes (contracts/attributes.py) come
last in every table they reach, after the columns on disk, so a new attribute is a trailing nullable
column that is added to an existing table in place (``added``; loanrisk/lake.py, contracts/table_sql.py,
warehouse/ddl.py). A column declared ``added_in_place`` (the scores' ``role``) is a migration of the same
kind: nullable, among the trailing columns, added to a table created without it (in its declared place).
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.attributes import APPLICATION_ATTRIBUTES
from contracts.events import DEAD_LETTER, LOAN_APPLICATION, REPAYMENT, TRANSACTION
from contracts.features import ATTRIBUTE_FEATURE_NAMES, FEATURE_NAMES
from contracts.schema import TYPE_MAP, EventContract, LogicalType


@dataclass(frozen=True)
class Column:
    """A table column: logical type, nullability, and the view column it is written from when named otherwise.

    ``pg_type_override`` replaces the PostgreSQL type TYPE_MAP gives; ``pg_default`` makes it a column
    PostgreSQL fills itself (the job's JDBC table leaves it out). ``names_a_person``: its values point at one
    person (a contract field's :attr:`~contracts.schema.Field.names_a_person`); the lake keeps no bounds of them.
    ``added_in_place``: tables on disk were created without it; it is added to them where it is declared
    (rows written before have it NULL).
    """

    name: str
    type: LogicalType
    nullable: bool = True
    source: str | None = None
    pg_type_override: str | None = None
    pg_default: str | None = None
    names_a_person: bool = False
    added_in_place: bool = False

    @property
    def written_from(self) -> str:
        """The column of the view the job writes this column from."""
        return self.source or self.name

    @property
    def flink_type(self) -> str:
        """The Flink type of the lake column (lake columns are all nullable)."""
        return TYPE_MAP[self.type][0]

    @property
    def iceberg_type(self) -> str:
        """The Iceberg type name of the lake column."""
        return TYPE_MAP[self.type][1]

    @property
    def snowflake_type(self) -> str:
        """The Snowflake type of the warehouse column."""
        return TYPE_MAP[self.type][2]

    @property
    def postgres_type(self) -> str:
        """The PostgreSQL type of the serving column."""
        return self.pg_type_override or TYPE_MAP[self.type][3]


@dataclass(frozen=True)
class LakeTable:
    """An Iceberg table of the lake, partitioned by one of its (date) columns."""

    name: str
    columns: tuple[Column, ...]
    partitioned_by: str

    def __post_init__(self) -> None:
        if self.partitioned_by not in self.names:
            raise ValueError(f"{self.name}: partition column {self.partitioned_by!r} is not a column")
        _check_unique(self.name, self.names)
        _check_added(self.name, self.columns, self.added)

    @property
    def names(self) -> list[str]:
        """Column names in table order."""
        return [c.name for c in self.columns]

    @property
    def added(self) -> tuple[str, ...]:
        """Trailing columns (application attributes, ``added_in_place`` ones): added in place to a table created
        without them."""
        return _attribute_columns(self.columns)


@dataclass(frozen=True)
class ServingTable:
    """A PostgreSQL serving table and the Flink JDBC table the job upserts it through.

    ``relaxed`` names columns created NOT NULL by earlier versions: existing tables get DROP NOT NULL.
    Columns with a ``pg_default`` are filled by PostgreSQL and are not part of the Flink table.
    ``schema`` is the PostgreSQL schema when it is not ``public`` (the job's tables are all in public).
    """

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    relaxed: tuple[str, ...] = ()
    schema: str | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        _check_unique(self.name, names)
        _check_added(self.name, self.sink_columns, self.added)
        unknown = [n for n in (*self.primary_key, *self.relaxed) if n not in names]
        if unknown:
            raise ValueError(f"{self.name}: {unknown} are not columns")
        nullable_keys = [c.name for c in self.columns if c.name in self.primary_key and c.nullable]
        if nullable_keys:
            raise ValueError(f"{self.name}: primary key columns {nullable_keys} must be declared nullable=False")

    @property
    def added(self) -> tuple[str, ...]:
        """Trailing columns of application attributes: added in place to a table created without them."""
        return _attribute_columns(self.columns)

    @property
    def qualified_name(self) -> str:
        """The table's name in PostgreSQL, with its schema when that is not public."""
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @property
    def jdbc_table(self) -> str:
        """The name of the Flink JDBC table that stands for this table in the job."""
        return f"pg_{self.name}"

    @property
    def sink_columns(self) -> tuple[Column, ...]:
        """The columns the job writes (all but those PostgreSQL fills itself), in table order."""
        return tuple(c for c in self.columns if c.pg_default is None)


# Columns named after an application attribute (its field, or its feature: the same name).
_ATTRIBUTE_COLUMNS = frozenset(a.name for a in APPLICATION_ATTRIBUTES)


def _attribute_columns(columns: tuple[Column, ...]) -> tuple[str, ...]:
    return tuple(c.name for c in columns if c.name in _ATTRIBUTE_COLUMNS or c.added_in_place)


def _check_unique(table: str, names: list[str]) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{table}: columns {repeated} are declared twice (an application attribute named like "
                         "a column of the table? rename it in contracts/attributes.py)")


def _check_added(table: str, columns: tuple[Column, ...], added: tuple[str, ...]) -> None:
    """Attribute columns must be the last ones, and nullable: only then can an existing table take them in place."""
    names = [c.name for c in columns]
    if names[len(names) - len(added):] != list(added) or any(not c.nullable for c in columns if c.name in added):
        raise ValueError(f"{table}: the application attribute and added-in-place columns {list(added)} must be its "
                         "last columns, nullable")


def _required(name: str, type_: LogicalType, **kw: object) -> Column:
    return Column(name, type_, nullable=False, **kw)  # type: ignore[arg-type]


# The customer id as every input event carries it (its contract field says it names a person).
_CUSTOMER_FIELD = LOAN_APPLICATION.field("customer_id")


def _customer_id(nullable: bool = False) -> Column:
    return Column(_CUSTOMER_FIELD.name, _CUSTOMER_FIELD.type, nullable=nullable,
                  names_a_person=_CUSTOMER_FIELD.names_a_person)


def lake_history(serving: ServingTable, name: str, partition: str, partition_from: str) -> LakeTable:
    """The lake table keeping every row the job upserts into ``serving``, plus its date partition column."""
    return LakeTable(name, serving.sink_columns + (Column(partition, "date", source=partition_from),), partition)


def raw_events(contract: EventContract, name: str) -> LakeTable:
    """The lake table of one input event: the contract's fields, ingestion time and the event date, then the
    fields of application attributes (trailing, so a table on disk takes a new one in place)."""
    fields = tuple(Column(f.name, f.type, names_a_person=f.names_a_person) for f in contract.fields
                   if f.name not in _ATTRIBUTE_COLUMNS)
    attributes = tuple(Column(f.name, f.type, names_a_person=f.names_a_person) for f in contract.fields
                       if f.name in _ATTRIBUTE_COLUMNS)
    return LakeTable(name, fields + (Column("ingested_at", "timestamp"),
                                     Column("event_date", "date", source=contract.event_time_field)) + attributes,
                     "event_date")


# --- Serving tables (PostgreSQL, upserted by primary key; the job also looks two of them up) ---

CUSTOMER_BEHAVIOUR_WINDOWS = ServingTable(
    "customer_behaviour_windows",
    (_customer_id(),
     # Created without time zone in existing deployments; the lookup join reads it as TIMESTAMP(3) in UTC.
     _required("behaviour_as_of", "timestamp", pg_type_override="TIMESTAMP"),
     *(_required(n, "double") for n in ("income_stability", "debit_minor_last", "balance_mean_minor_last",
                                        "dpd_current", "dpd_max", "dpd_mean", "late_payments", "missed_payments",
                                        "behaviour_windows"))),
    ("customer_id", "behaviour_as_of"))

LOAN_APPLICATIONS_ACTIVE = ServingTable(
    "loan_applications_active",
    (_customer_id(), _required("loan_id", "string"),
     _required("applied_at", "timestamp", source="event_time"),
     Column("product", "string"), Column("region", "string"), Column("grade", "string"),
     Column("currency", "string"), Column("amount_minor", "long"), Column("monthly_income_minor", "double"),
     *(Column(n, "double") for n in ("debt_to_income", "loan_to_income", "installment_to_income",
                                     "credit_utilization", "interest_rate", "term_months", "emp_length_years",
                                     "delinquencies_2y", "inquiries_12m", "is_secured", "loan_to_value")),
     # The attribute features, looked up again when a behaviour window re-scores the loan.
     *(Column(n, "double") for n in ATTRIBUTE_FEATURE_NAMES)),
    ("customer_id",))

LOAN_SCORES_LATEST = ServingTable(
    "loan_scores_latest",
    (_required("loan_id", "string"), _customer_id(),
     _required("trigger_time", "timestamp", source="event_time"), _required("trigger_kind", "string"),
     # NULL with probability: the latest trigger came while no model could load.
     Column("model_version", "string"), Column("probability", "double"), Column("reason_codes", "string"),
     Column("product", "string"), Column("region", "string"), Column("grade_band", "string"),
     Column("exposure_usd", "double"), Column("expected_loss_usd", "double"),
     _required("written_at", "timestamp", pg_default="now()")),
    ("loan_id",),
    # Tables created while both were NOT NULL: an unscored row would fail the job's JDBC sink.
    relaxed=("model_version", "probability"))

RISK_BY_WINDOW = ServingTable(
    "risk_by_window",
    (_required("window_start", "timestamp"), _required("window_end", "timestamp"),
     _required("product", "string"), _required("region", "string"), _required("grade_band", "string"),
     _required("applications", "long"), _required("scored_loans", "long"),
     Column("mean_probability", "double"), Column("max_probability", "double"),
     Column("high_risk_share", "double"), Column("expected_loss_usd", "double")),
    ("window_start", "product", "region", "grade_band"))

REPAYMENTS_BY_WINDOW = ServingTable(
    "repayments_by_window",
    (_required("window_start", "timestamp"), _required("window_end", "timestamp"),
     _required("repayments", "long"), _required("late_payments", "long"), _required("missed_payments", "long")),
    ("window_start",))

LOAN_OUTCOMES = ServingTable(
    "loan_outcomes",
    (_required("loan_id", "string"), _customer_id(), Column("first_due_date", "date"),
     _required("max_days_past_due", "int"), Column("first_default_date", "date"),
     _required("observed_until", "timestamp"), _required("repayment_records", "long")),
    ("loan_id",))

REPEATED_EVENTS = ServingTable(
    "repeated_events",
    (_required("source_topic", "string"), _required("event_id", "string"), _required("repeats", "long"),
     _required("last_seen_at", "timestamp")),
    ("source_topic", "event_id"))

SERVING_TABLES: tuple[ServingTable, ...] = (CUSTOMER_BEHAVIOUR_WINDOWS, LOAN_APPLICATIONS_ACTIVE, LOAN_SCORES_LATEST,
                                            RISK_BY_WINDOW, REPAYMENTS_BY_WINDOW, LOAN_OUTCOMES, REPEATED_EVENTS)

# --- Scoring API tables (PostgreSQL, written by scoring_api/, not by the job) ---
# In their own schema: the read-only role's SELECT on the public schema (loanrisk/serving.py) never
# reaches key hashes or stored answers. No customer_id column: an erasure has nothing to find here.

API_SCHEMA = "scoring_api"

# One API key per client, stored as a salted SHA-256 of its secret; ``key_id`` is the key's public part.
API_KEYS = ServingTable(
    "api_keys",
    (_required("client", "string"), _required("key_id", "string"), _required("key_salt", "string"),
     _required("key_hash", "string"), _required("created_at", "timestamp", pg_default="now()"),
     Column("revoked_at", "timestamp")),
    ("client",), schema=API_SCHEMA)

# The answer to each (client, Idempotency-Key) until it expires: ``pending`` while the first request
# runs (its ``claim_id`` finishes it), then ``done`` with the status and body every repeat gets.
API_IDEMPOTENCY = ServingTable(
    "api_idempotency",
    (_required("client", "string"), _required("idempotency_key", "string"), _required("request_hash", "string"),
     _required("claim_id", "string"), _required("state", "string"), Column("status_code", "int"),
     Column("response", "string"), _required("created_at", "timestamp", pg_default="now()"),
     _required("expires_at", "timestamp")),
    ("client", "idempotency_key"), schema=API_SCHEMA)

API_TABLES: tuple[ServingTable, ...] = (API_KEYS, API_IDEMPOTENCY)

# --- Lake tables (Iceberg, append-only, partitioned by day) ---

RAW_LOAN_APPLICATIONS = raw_events(LOAN_APPLICATION, "raw_loan_applications")
RAW_TRANSACTIONS = raw_events(TRANSACTION, "raw_transactions")
RAW_REPAYMENTS = raw_events(REPAYMENT, "raw_repayments")

DEAD_LETTERS = LakeTable(
    "dead_letters",
    tuple(Column(f.name, f.type, names_a_person=f.names_a_person) for f in DEAD_LETTER.fields)
    + (Column("received_date", "date", source=DEAD_LETTER.event_time_field),),
    "received_date")

BEHAVIOUR_HISTORY = lake_history(CUSTOMER_BEHAVIOUR_WINDOWS, "customer_behaviour_windows", "window_date", "behaviour_as_of")

# Which model wrote a score row (``role``): the champion, whose score also goes to serving, alerts and the risk
# windows, or a shadow challenger, whose score goes to this table only. Rows written before the column existed
# are NULL: the champion's.
CHAMPION_ROLE = "champion"
CHALLENGER_ROLE = "challenger"

# One row per scoring (trigger_kind 'application' or 'behaviour_window') and model (the champion's, then one per
# shadow challenger), with the exact feature row scored.
SCORES = LakeTable(
    "scores",
    (Column("trigger_kind", "string"), Column("loan_id", "string"), _customer_id(nullable=True),
     Column("trigger_time", "timestamp", source="event_time"), Column("behaviour_as_of", "timestamp"),
     Column("product", "string"), Column("region", "string"), Column("grade_band", "string"),
     Column("currency", "string"), Column("amount_minor", "long"), Column("probability", "double"),
     Column("model_version", "string"), Column("reason_codes", "string"), Column("exposure_usd", "double"),
     Column("expected_loss_usd", "double"),
     *(Column(n, "double") for n in FEATURE_NAMES if n not in _ATTRIBUTE_COLUMNS),
     Column("scored_date", "date", source="event_time"),
     Column("role", "string", added_in_place=True),
     *(Column(n, "double") for n in ATTRIBUTE_FEATURE_NAMES)),
    "scored_date")

RISK_HISTORY = lake_history(RISK_BY_WINDOW, "risk_by_window", "window_date", "window_start")

# Append-only outcome history: the row with the latest observed_until per loan is its outcome.
OUTCOME_HISTORY = lake_history(LOAN_OUTCOMES, "loan_outcomes", "observed_date", "observed_until")

LAKE_TABLES: tuple[LakeTable, ...] = (RAW_LOAN_APPLICATIONS, RAW_TRANSACTIONS, RAW_REPAYMENTS, DEAD_LETTERS,
                                      BEHAVIOUR_HISTORY, SCORES, RISK_HISTORY, OUTCOME_HISTORY)


def lake_table(name: str) -> LakeTable:
    """The lake table called ``name``."""
    for t in LAKE_TABLES:
        if t.name == name:
            return t
    raise KeyError(f"no lake table {name!r}; known: {', '.join(t.name for t in LAKE_TABLES)}")
