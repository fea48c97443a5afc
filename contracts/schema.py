"""The field model every event contract is written in, and the type mapping to each engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LogicalType = Literal["string", "int", "long", "double", "boolean", "date", "timestamp"]

# One row per logical type: Flink SQL type, Iceberg type name, Snowflake type, PostgreSQL type.
TYPE_MAP: dict[str, tuple[str, str, str, str]] = {
    "string": ("STRING", "string", "VARCHAR", "TEXT"),
    "int": ("INT", "int", "NUMBER(10,0)", "INTEGER"),
    "long": ("BIGINT", "long", "NUMBER(19,0)", "BIGINT"),
    "double": ("DOUBLE", "double", "FLOAT", "DOUBLE PRECISION"),
    "boolean": ("BOOLEAN", "boolean", "BOOLEAN", "BOOLEAN"),
    "date": ("DATE", "date", "DATE", "DATE"),
    # Event and ingestion times are instants in UTC, millisecond precision on the wire.
    "timestamp": ("TIMESTAMP_LTZ(6)", "timestamptz", "TIMESTAMP_TZ(6)", "TIMESTAMPTZ"),
}


@dataclass(frozen=True)
class Field:
    """One field of an event: its type, whether it may be null, PII marking, unit and meaning.

    ``pii`` fields hold personal data (pseudonymised before any sink). ``identifies_person`` marks the other
    fields that single a person out although they hold no personal data themselves: the customer id, and text
    that can carry one. Both kinds are what an erasure must leave nowhere (see :attr:`names_a_person`).
    """

    name: str
    type: LogicalType
    doc: str
    nullable: bool = False
    pii: bool = False
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    identifies_person: bool = False

    @property
    def names_a_person(self) -> bool:
        """Whether a value of this field points at one person (PII, or an identifier such as the customer id)."""
        return self.pii or self.identifies_person

    @property
    def flink_type(self) -> str:
        """The Flink SQL type (with NOT NULL for required fields)."""
        base = TYPE_MAP[self.type][0]
        return base if self.nullable else f"{base} NOT NULL"

    @property
    def snowflake_type(self) -> str:
        """The Snowflake column type."""
        return TYPE_MAP[self.type][2]

    @property
    def postgres_type(self) -> str:
        """The PostgreSQL column type."""
        return TYPE_MAP[self.type][3]


@dataclass(frozen=True)
class EventContract:
    """An event type: its topic, key, schema version, event-time field and fields."""

    name: str
    topic: str
    key: str
    id_field: str
    event_time_field: str
    schema_version: int
    doc: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field:
        """The field called ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def names(self) -> list[str]:
        """Field names in contract order."""
        return [f.name for f in self.fields]

    @property
    def required(self) -> list[str]:
        """Names of fields that must be present and non-null."""
        return [f.name for f in self.fields if not f.nullable]

    @property
    def pii_fields(self) -> list[str]:
        """Names of fields holding personal data (replaced by a keyed hash before any sink)."""
        return [f.name for f in self.fields if f.pii]
