"""The PNG renderer writes numbers as Grafana does: units, decimals, min and max of each panel (no stack needed)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal

import pandas as pd
import pytest

from grafana import units
from grafana.build import load
from grafana.render import PanelResult, figure, query_panels, stat_text
from grafana.units import axis_ticks, format_value


def panel(dashboard: str, title: str) -> dict:
    return next(p for p in query_panels(load()[dashboard]) if p["title"] == title)


def series(*values: float) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2026-01-01", periods=len(values), freq="1min", tz="UTC"))


@pytest.mark.parametrize(("value", "unit", "decimals", "text"), [
    (42_050, "short", None, "42.1 K"),
    (42_050, "none", None, "42050"),
    (34, "short", 0, "34"),
    (0.25, "percentunit", None, "25%"),
    (0.0973, "percentunit", 1, "9.7%"),
    (3_600_000, "dtdurationms", None, "1 hour"),
    (366.3, "dtdurations", 1, "6 minutes, 6 seconds"),
    (40_000, "ms", None, "40 s"),
    (150_000, "µs", None, "150 ms"),
    (366.3, "s", None, "6.11 mins"),
    (310_639.2, "currencyUSD", None, "$311K"),
    (1_500, "rps", None, "1.50K rps"),
    (1.0, "none", 0, "1"),
    ("v0001", "string", None, "v0001"),
])
def test_values_read_as_grafana_shows_them(value: float, unit: str, decimals: int | None, text: str) -> None:
    assert format_value(value, unit, decimals) == text


def test_no_value_is_written_in_scientific_notation() -> None:
    for unit in ("none", "short", "ms", "currencyUSD", "percentunit"):
        for value in (4.205e4, 1.5e-7, 7.3e12, 123_456_789.0):
            text = format_value(value, unit)
            assert not re.search(r"\d[eE][+-]?\d", text), (unit, value, text)


def test_an_unknown_unit_is_refused_rather_than_drawn_raw() -> None:
    with pytest.raises(units.UnknownUnit, match="bytes"):
        format_value(1.0, "bytes")


def test_axis_ticks_share_one_scale_and_respect_fixed_decimals() -> None:
    assert axis_ticks(0, 1, "percentunit") == ([0, 0.2, 0.4, 0.6, 0.8, 1.0], ["0%", "20%", "40%", "60%", "80%", "100%"])
    assert axis_ticks(0, 45_000, "ms")[1] == ["0", "10 s", "20 s", "30 s", "40 s"]
    assert axis_ticks(0, 44_000, "short")[1] == ["0", "10 K", "20 K", "30 K", "40 K"]
    assert axis_ticks(0, 1, "short", decimals=0)[1] == ["0", "1"]  # a count axis never shows 0.5
    assert axis_ticks(0, 1_500, "short", decimals=0)[1] == ["0", "500", "1000", "1500"]  # not 0, 1 K
    assert axis_ticks(0, 400, "dtdurations")[1] == ["0", "2 mins", "4 mins", "6 mins"]


def test_a_share_panel_is_drawn_from_0_to_100_percent_whatever_its_data() -> None:
    res = PanelResult(panel("pipeline-health.json", "Backpressure, by task"),
                      series=[("read transactions (Kafka)", series(0.0, 0.0, 0.0))])
    yaxis = figure(res, 600, 300).layout.yaxis
    assert list(yaxis.range) == [0, 1]
    assert list(yaxis.ticktext) == ["0%", "20%", "40%", "60%", "80%", "100%"]


def test_a_duration_axis_is_labelled_in_seconds_not_thousands() -> None:
    res = PanelResult(panel("pipeline-health.json", "Checkpoint duration"),
                      series=[("last checkpoint", series(2_000.0, 46_000.0, 3_000.0))])
    yaxis = figure(res, 600, 300).layout.yaxis
    assert yaxis.range[0] == 0 and "40 s" in yaxis.ticktext and not any("k" in t for t in yaxis.ticktext)


def test_stats_show_their_unit() -> None:
    lag = PanelResult(panel("pipeline-health.json", "Consumer lag"), series=[("A", series(1.0, 42_050.0))])
    uptime = PanelResult(panel("pipeline-health.json", "Job uptime"), series=[("A", series(3_600.0, 3_666.3))])
    scored = PanelResult(panel("loan-risk-live.json", "Mean default probability"),
                         frames=[pd.DataFrame({"mean_probability": [Decimal("0.0973")]})])
    assert stat_text(lag) == "42.1 K"
    assert stat_text(uptime) == "1 hour, 1 minute"
    assert stat_text(scored) == "9.7%"


def test_table_cells_use_each_columns_unit() -> None:
    frame = pd.DataFrame({"trigger_time": [datetime(2026, 1, 1, 12, 30, tzinfo=timezone.utc)], "loan_id": ["app_1"],
                          "probability": [0.7472], "expected_loss_usd": [36_560.4]})
    table = figure(PanelResult(panel("loan-risk-live.json", "Riskiest recent loans"), frames=[frame]), 600, 300).data[0]
    assert list(table.cells.values) == [["2026-01-01 12:30"], ["app_1"], ["74.7%"], ["$36.6K"]]
