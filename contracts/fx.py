"""The configured FX table: amounts in minor units of any contract currency -> reporting currency (USD).

Every money field on the wire is an integer count of minor units (cents, paise) plus an ISO-4217
``currency``. Reports, thresholds and cross-region aggregates use the reporting currency. Rates are
fixed reference rates (USD per one major unit) kept here so every engine converts the same way; a
deployment can pass its own table (``load_fx_table``) instead of editing this file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

REPORTING_CURRENCY = "USD"


@dataclass(frozen=True)
class CurrencyInfo:
    """One currency: digits after the decimal point of its minor unit and its value in USD."""

    code: str
    minor_digits: int
    usd_per_unit: Decimal

    @property
    def minor_per_unit(self) -> int:
        """Minor units in one major unit (100 cents per dollar, 100 paise per rupee)."""
        return 10 ** self.minor_digits


# Reference rates as of 2026-01 (USD per unit); INR amounts are in paise (1 rupee = 100 paise).
FX_TABLE: dict[str, CurrencyInfo] = {
    "USD": CurrencyInfo("USD", 2, Decimal("1")),
    "EUR": CurrencyInfo("EUR", 2, Decimal("1.08")),
    "GBP": CurrencyInfo("GBP", 2, Decimal("1.27")),
    "INR": CurrencyInfo("INR", 2, Decimal("0.012")),
}


def currency_info(currency: str, table: Mapping[str, CurrencyInfo] = FX_TABLE) -> CurrencyInfo:
    """The table entry for ``currency``; a KeyError naming the configured currencies otherwise."""
    try:
        return table[currency]
    except KeyError:
        raise KeyError(f"no FX rate for {currency!r}; configured: {', '.join(sorted(table))}") from None


def to_major(amount_minor: int, currency: str, table: Mapping[str, CurrencyInfo] = FX_TABLE) -> Decimal:
    """Minor units as an exact decimal amount of the same currency (12345 USD cents -> 123.45)."""
    return Decimal(amount_minor) / currency_info(currency, table).minor_per_unit


def to_reporting_minor(amount_minor: int, currency: str, table: Mapping[str, CurrencyInfo] = FX_TABLE) -> int:
    """``amount_minor`` of ``currency`` converted to reporting-currency minor units (USD cents), half-even."""
    info = currency_info(currency, table)
    usd = Decimal(amount_minor) / info.minor_per_unit * info.usd_per_unit
    target = currency_info(REPORTING_CURRENCY, table)
    return int((usd / target.usd_per_unit * target.minor_per_unit).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def to_reporting(amount_minor: int, currency: str, table: Mapping[str, CurrencyInfo] = FX_TABLE) -> float:
    """``amount_minor`` of ``currency`` in reporting-currency major units, as a float for analytics."""
    return to_reporting_minor(amount_minor, currency, table) / currency_info(REPORTING_CURRENCY, table).minor_per_unit


def minor_to_reporting_factor(currency: str, table: Mapping[str, CurrencyInfo] = FX_TABLE) -> float:
    """Multiply minor units of ``currency`` by this to get reporting major units (for SQL lookup tables)."""
    info = currency_info(currency, table)
    target = currency_info(REPORTING_CURRENCY, table)
    return float(info.usd_per_unit / target.usd_per_unit / info.minor_per_unit)


def fx_rows(table: Mapping[str, CurrencyInfo] = FX_TABLE) -> list[tuple[str, int, float]]:
    """(currency, minor_digits, factor to reporting major units) per currency, sorted: seed a lookup table."""
    return [(code, table[code].minor_digits, minor_to_reporting_factor(code, table)) for code in sorted(table)]


def load_fx_table(path: Path) -> dict[str, CurrencyInfo]:
    """A table from JSON ``{"INR": {"minor_digits": 2, "usd_per_unit": "0.012"}, ...}``; must include USD."""
    raw = json.loads(Path(path).read_text())
    table = {code: CurrencyInfo(code, int(v["minor_digits"]), Decimal(str(v["usd_per_unit"])))
             for code, v in raw.items()}
    if REPORTING_CURRENCY not in table:
        raise ValueError(f"{path}: the FX table must include the reporting currency {REPORTING_CURRENCY}")
    return table
