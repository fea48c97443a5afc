"""Grafana's value formats in Python: how a panel's ``unit`` and ``decimals`` turn a number into text.

The PNG renderer formats stat values, table cells and axis ticks with these so a picture reads as the
dashboard does in Grafana: 42,130 in ``short`` is "42.1 K", 0.25 in ``percentunit`` is "25%", 366 in
``dtdurations`` is "6 minutes", 40,000 in ``ms`` is "40 s", never ``4.213e+4``. The rules follow Grafana's
valueFormats (scaled units by 1000, time units stepping ms -> s -> min -> hour, "auto" decimals from the
value's magnitude). Only the units in ``UNITS`` are known: the dashboard tests fail on a panel with any
other, rather than letting the renderer draw it as a raw number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

# Suffixes of Grafana's units scaled by 1000; a value is shown at the largest step it reaches.
_SHORT = (" K", " Mil", " Bil", " Tri")
_COUNT = ("K", "M", "B", "T")
# Time units: (below this many base units, divide by, suffix).
_MS = ((1e3, 1.0, " ms"), (6e4, 1e3, " s"), (3.6e6, 6e4, " min"), (8.64e7, 3.6e6, " hour"),
       (3.1536e10, 8.64e7, " day"), (math.inf, 3.1536e10, " year"))
_S = ((1e-3, 1e-6, " µs"), (1.0, 1e-3, " ms"), (60.0, 1.0, " s"), (3600.0, 60.0, " min"), (86400.0, 3600.0, " hour"),
      (604800.0, 86400.0, " day"), (31536000.0, 604800.0, " week"), (math.inf, 3.15569e7, " year"))
_US = ((1e3, 1.0, " µs"), (1e6, 1e3, " ms"), (math.inf, 1e6, " s"))
_PLURAL = {" min", " hour", " day", " week", " year"}
# Duration units name the largest whole unit, then as many smaller ones as ``decimals`` asks for.
_DURATION_PARTS = (("year", 31536000.0), ("month", 2592000.0), ("week", 604800.0), ("day", 86400.0),
                   ("hour", 3600.0), ("minute", 60.0), ("second", 1.0), ("millisecond", 0.001))
_DURATIONS = {"dtdurations": 1.0, "dtdurationms": 0.001}

# The units the dashboards may use, with what each is for.
UNITS: dict[str, str] = {
    "none": "a plain number",
    "string": "text, shown as it is",
    "short": "a count, scaled by 1000 (K, Mil, Bil)",
    "percent": "a percentage 0-100",
    "percentunit": "a share or probability 0.0-1.0, shown as 0-100 %",
    "currencyUSD": "US dollars, scaled by 1000 (K, M, B)",
    "rps": "reads (records read) per second",
    "wps": "writes (records written) per second",
    "ops": "operations per second",
    "reqps": "requests per second",
    "µs": "microseconds",
    "ms": "milliseconds",
    "s": "seconds",
    "dtdurations": "a duration in seconds, in words (6 minutes)",
    "dtdurationms": "a duration in milliseconds, in words (1 hour)",
}
_THROUGHPUT = {"rps", "wps", "ops", "reqps"}


class UnknownUnit(ValueError):
    """A panel unit the renderer does not format (add it to grafana/units.py, or use one of UNITS)."""


def _check(unit: str) -> None:
    if unit not in UNITS:
        raise UnknownUnit(f"unit {unit!r} is not one the renderer formats: use one of {', '.join(UNITS)}")


def auto_decimals(value: float) -> int:
    """Grafana's decimals for a value shown without a fixed ``decimals``: whole numbers none, others two
    significant digits after the leading one (9.7 -> 2, 42.05 -> 1, 366.3 -> 0)."""
    if value == 0 or not math.isfinite(value) or float(value).is_integer():
        return 0
    return max(0, 2 - math.floor(math.log10(abs(value))))


def to_fixed(value: float, decimals: int | None = None) -> str:
    """``value`` with ``decimals`` places (auto when None), rounded half up as people round, no exponent."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    places = auto_decimals(value) if decimals is None else max(0, int(decimals))
    text = f"{Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _scale(unit: str, magnitude: float) -> tuple[float, str, str]:
    """(divisor, prefix, suffix) Grafana shows a value of ``magnitude`` (>= 0) in ``unit`` with."""
    if unit == "percentunit":
        return 0.01, "", "%"
    if unit == "percent":
        return 1.0, "", "%"
    if unit in ("short", "currencyUSD") or unit in _THROUGHPUT:
        steps = _SHORT if unit == "short" else _COUNT
        index = 0 if magnitude < 1000 else min(int(math.floor(math.log10(magnitude) / 3 + 1e-12)), len(steps))
        suffix = ("",) + steps
        tail = f" {unit}" if unit in _THROUGHPUT else ""
        return 1000.0 ** index, "$" if unit == "currencyUSD" else "", suffix[index] + tail
    table = {"ms": _MS, "s": _S, "µs": _US}.get(unit)
    if table is not None:
        return next((divisor, "", suffix) for below, divisor, suffix in table if magnitude < below)
    return 1.0, "", ""


def _with_plural(suffix: str, scaled: float) -> str:
    return suffix + "s" if suffix in _PLURAL and abs(scaled) > 1 else suffix


def duration_words(value: float, unit: str, decimals: int | None = None) -> str:
    """A duration unit in words, as Grafana's dtdurations / dtdurationms: the largest whole unit, then
    ``decimals`` smaller ones ("6 minutes"; decimals 1: "6 minutes, 6 seconds"; 3,600,000 ms: "1 hour")."""
    seconds = value * _DURATIONS[unit]
    if seconds == 0:
        return "0 " + ("seconds" if unit == "dtdurations" else "milliseconds")
    if seconds < 0:
        return duration_words(-value, unit, decimals) + " ago"
    parts: list[str] = []
    extra = 0 if decimals is None else int(decimals)
    rest = round(seconds * 1000)  # whole milliseconds, so 0.1 s steps do not drift
    for name, size in _DURATION_PARTS:
        size_ms = round(size * 1000)
        if parts or rest >= size_ms:
            count, rest = divmod(rest, size_ms)
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
            if len(parts) > extra:
                break
    return ", ".join(parts)


def format_value(value: float | str | None, unit: str, decimals: int | None = None) -> str:
    """One value as a Grafana stat or table cell shows it in ``unit`` ("" for no value)."""
    _check(unit)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if unit == "string" or isinstance(value, str):
        return str(value)
    value = float(value)
    if unit in _DURATIONS:
        return duration_words(value, unit, decimals)
    divisor, prefix, suffix = _scale(unit, abs(value))
    scaled = abs(value) / divisor
    sign = "-" if value < 0 and to_fixed(scaled, decimals) != to_fixed(0.0, decimals) else ""
    return f"{sign}{prefix}{to_fixed(scaled, decimals)}{_with_plural(suffix, scaled)}"


def _nice_step(raw: float) -> float:
    """The 1, 2, 2.5 or 5 x 10^n step at or above ``raw``."""
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))


def _step_decimals(step: float) -> int:
    """Places that tell ticks ``step`` apart (0.25 -> 2, 5 -> 0)."""
    for places in range(0, 10):
        if abs(round(step, places) - step) <= step * 1e-9:
            return places
    return 10


def _tick_label(tick: float, places: int, prefix: str, suffix: str) -> str:
    if abs(tick) < 1e-12:  # zero needs no scale: "0", not "0 K" or "$0K"
        return "0%" if suffix == "%" else "0"
    return f"{'-' if tick < 0 else ''}{prefix}{to_fixed(abs(tick), places)}{_with_plural(suffix, tick)}"


def axis_ticks(lo: float, hi: float, unit: str, decimals: int | None = None,
               count: int = 5) -> tuple[list[float], list[str]]:
    """Tick positions (in the data's own unit) and labels for an axis from ``lo`` to ``hi``.

    Every label of an axis shares one scale, chosen from the larger end (0 s, 20 s, 40 s rather than
    0 ms, 20 s, 40 s); a panel's fixed ``decimals`` keeps ticks at whole multiples of that precision, so a
    count axis never shows 0.5. Duration units tick as their plain time unit (s or ms).
    """
    _check(unit)
    if not hi > lo:
        raise ValueError(f"an axis needs hi > lo, got {lo}..{hi}")
    axis_unit = {"dtdurations": "s", "dtdurationms": "ms", "string": "none"}.get(unit, unit)
    raw_step = (hi - lo) / max(count, 1)
    divisor, prefix, suffix = _scale(axis_unit, max(abs(lo), abs(hi)))
    if decimals is not None and raw_step / divisor < 10.0 ** -int(decimals):
        # Steps finer than the fixed decimals can show at this scale: label at the steps' own scale (500, not 0.5 K).
        divisor, prefix, suffix = _scale(axis_unit, raw_step)
    d_lo, d_hi = lo / divisor, hi / divisor
    step = _nice_step(raw_step / divisor)
    if decimals is not None:
        step = max(step, 10.0 ** -int(decimals))
    places = _step_decimals(step) if decimals is None else max(int(decimals), 0)
    first, last = math.ceil(d_lo / step - 1e-9), math.floor(d_hi / step + 1e-9)
    shown = [k * step for k in range(first, last + 1)]
    labels = [_tick_label(t, places, prefix, suffix) for t in shown]
    return [t * divisor for t in shown], labels


def axis_range(values: Sequence[float], minimum: float | None, maximum: float | None) -> tuple[float, float]:
    """The axis a panel's ``min``/``max`` and its data give: fixed ends where set, the data's extent (with a
    little room above) where not, and never an empty range."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    lo = minimum if minimum is not None else (min(finite) if finite else 0.0)
    if maximum is not None:
        hi = maximum
    else:
        top = max(finite) if finite else lo
        hi = top + 0.05 * (top - lo) if top > lo else lo + (abs(lo) or 1.0)
    return float(lo), float(hi)
