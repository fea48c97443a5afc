"""The "Loan risk, live" dashboard: scores, risk windows and repayments from the PostgreSQL serving tables.

Every number has a unit and starts at 0; probabilities and shares run from 0 to 100 %.
"""

from __future__ import annotations

from typing import TypeVar

from grafana_foundation_sdk.builders import barchart, dashboard as dash, histogram, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (Dashboard, DataSourceRef, FieldColorModeId, VariableOption,
                                                      VariableRefresh)

from grafana.panels import POSTGRES, Ids, Sql, steps
from loanrisk.settings import Settings

UID = "loanrisk-live"
# Where "medium" risk starts; "high" starts at the job's alert threshold (settings.model.alert_threshold).
MEDIUM = 0.2
# Multi-value filters: '__all' is the custom "All" value, inserted raw by Grafana.
FILTERS = ("('__all' IN ($product) OR product IN ($product)) AND ('__all' IN ($region) OR region IN ($region)) "
           "AND ('__all' IN ($grade) OR grade_band IN ($grade))")
SCORES = f"FROM loan_scores_latest WHERE $__timeFilter(trigger_time) AND {FILTERS}"
WINDOWS = f"FROM risk_by_window WHERE $__timeFilter(window_start) AND {FILTERS}"
SHARE_STEPS = steps((None, "green"), (0.05, "orange"), (0.15, "red"))
_P = TypeVar("_P", stat.Panel, timeseries.Panel)


def _filter_variable(name: str, column: str, label: str) -> dash.QueryVariable:
    """A multi-value PostgreSQL variable over the values of ``column`` in the latest scores."""
    return (dash.QueryVariable(name).label(label).datasource(POSTGRES)
            .query(f"SELECT DISTINCT {column} FROM loan_scores_latest WHERE {column} IS NOT NULL ORDER BY 1")
            .multi(True).include_all(True).all_value("'__all'").refresh(VariableRefresh.ON_DASHBOARD_LOAD)
            .current(VariableOption(selected=True, text="All", value="$__all")))


def _segment_variable() -> dash.CustomVariable:
    """Which dimension the distribution panel groups by (a column name, inserted raw)."""
    return (dash.CustomVariable("segment").label("Segment by")
            .values("Grade : grade_band, Product : product, Region : region")
            .current(VariableOption(selected=True, text="Grade", value="grade_band")))


def _stat(ids: Ids, title: str, sql: str, unit: str, thresholds: dash.ThresholdsConfig) -> stat.Panel:
    panel = (stat.Panel().id(ids()).title(title).datasource(POSTGRES).with_target(Sql(sql))
             .thresholds(thresholds).height(4).span(4).color_mode(common.BigValueColorMode.VALUE)
             .graph_mode(common.BigValueGraphMode.NONE))
    return _bounded(panel, unit).decimals(1) if unit == "percentunit" else _bounded(panel, unit)


def _series(ids: Ids, title: str, sql: str, unit: str, description: str) -> timeseries.Panel:
    panel = (timeseries.Panel().id(ids()).title(title).description(description).datasource(POSTGRES)
             .with_target(Sql(sql, fmt="time_series")).height(8).span(12).fill_opacity(15).span_nulls(True))
    return _bounded(panel, unit).decimals(0) if unit == "short" else _bounded(panel, unit)


def _bounded(panel: _P, unit: str) -> _P:
    """``unit`` from 0, and shares and probabilities to 100 %."""
    panel = panel.unit(unit).min(0)
    return panel.max(1) if unit == "percentunit" else panel


def build(settings: Settings) -> Dashboard:
    """The dashboard model; a probability is high risk from the alert threshold the job alerts at."""
    high = float(settings.model.alert_threshold)
    medium = min(MEDIUM, high)
    pd_steps = steps((None, "green"), (medium, "orange"), (high, "red"))
    ids = Ids()
    d = (dash.Dashboard("Loan risk, live").uid(UID).tags(["loan-risk", "serving"]).refresh("30s")
         .time("now-24h", "now").timezone("utc").readonly()
         .description("Scores, risk windows and repayments written by the Flink risk job to PostgreSQL.")
         .with_variable(_segment_variable())
         .with_variable(_filter_variable("product", "product", "Product"))
         .with_variable(_filter_variable("region", "region", "Region"))
         .with_variable(_filter_variable("grade", "grade_band", "Grade")))
    d = (d.with_row(dash.Row("Now").id(ids()))
         .with_panel(_stat(ids, "Loans scored", f"SELECT count(*) AS loans {SCORES}", "short",
                           steps((None, "blue"))))
         .with_panel(_stat(ids, "Mean default probability", f"SELECT avg(probability) AS mean_probability {SCORES}",
                           "percentunit", pd_steps))
         .with_panel(_stat(ids, "High-risk share",
                           f"SELECT avg(CASE WHEN probability >= {high} THEN 1.0 ELSE 0.0 END) AS high_risk_share "
                           f"{SCORES}", "percentunit", SHARE_STEPS))
         .with_panel(_stat(ids, "Expected loss", f"SELECT coalesce(sum(expected_loss_usd), 0) AS expected_loss {SCORES}",
                           "currencyUSD", steps((None, "green"), (1e6, "orange"), (5e6, "red"))))
         .with_panel(stat.Panel().id(ids()).title("Model version in use").datasource(POSTGRES)
                     .description("The champion that scored the most recent loan (and how many loans it scored).")
                     .with_target(Sql(f"SELECT model_version, count(*) AS loans {SCORES} "
                                      "GROUP BY model_version ORDER BY max(trigger_time) DESC LIMIT 1"))
                     .reduce_options(cb.ReduceDataOptions().values(False).calcs(["lastNotNull"])
                                     .fields("/^model_version$/")).unit("string")
                     .text_mode(common.BigValueTextMode.VALUE).color_mode(common.BigValueColorMode.NONE)
                     .height(4).span(8)))
    d = (d.with_row(dash.Row("Distribution").id(ids()))
         .with_panel(barchart.Panel().id(ids()).title("Risk distribution by $segment").datasource(POSTGRES)
                     .description(f"Loans per segment and risk band (high = probability >= {high:g}).")
                     .with_target(Sql(
                         f"SELECT $segment AS segment, "
                         f"count(*) FILTER (WHERE probability < {medium}) AS \"low (< {medium:.0%})\", "
                         f"count(*) FILTER (WHERE probability >= {medium} AND probability < {high}) AS \"medium\", "
                         f"count(*) FILTER (WHERE probability >= {high}) AS \"high\" "
                         f"{SCORES} GROUP BY 1 ORDER BY 1"))
                     .x_field("segment").stacking(common.StackingMode.NORMAL).unit("short").min(0).decimals(0)
                     .color_scheme(dash.FieldColor().mode(FieldColorModeId.PALETTE_CLASSIC)).height(9).span(12))
         .with_panel(histogram.Panel().id(ids()).title("Default-probability histogram").datasource(POSTGRES)
                     .description("Latest probability of every loan in the range.")
                     .with_target(Sql(f"SELECT probability {SCORES}"))
                     .bucket_size(0.02)  # type: ignore[arg-type]  # Grafana takes a fraction; the SDK says int
                     .unit("percentunit").min(0).max(1).decimals(0).thresholds(pd_steps)
                     .height(9).span(12)))
    d = (d.with_row(dash.Row("Risk windows").id(ids()))
         .with_panel(_series(ids, "Applications", f"SELECT $__timeGroupAlias(window_start, $__interval), "
                             f"sum(applications) AS applications {WINDOWS} GROUP BY 1 ORDER BY 1", "short",
                             "Applications per window (risk_by_window)."))
         .with_panel(_series(ids, "Mean default probability",
                             f"SELECT $__timeGroupAlias(window_start, $__interval), "
                             f"sum(mean_probability * scored_loans) / nullif(sum(scored_loans), 0) AS mean_probability "
                             f"{WINDOWS} GROUP BY 1 ORDER BY 1", "percentunit",
                             "Mean probability of the loans scored in each window, weighted by loans.")
                     .thresholds(pd_steps).thresholds_style(cb.GraphThresholdsStyleConfig()
                                                            .mode(common.GraphThresholdsStyleMode.LINE)))
         .with_panel(_series(ids, "High-risk share", f"SELECT $__timeGroupAlias(window_start, $__interval), "
                             f"sum(high_risk_share * scored_loans) / nullif(sum(scored_loans), 0) AS high_risk_share "
                             f"{WINDOWS} GROUP BY 1 ORDER BY 1", "percentunit",
                             f"Share of scored loans with probability >= {high:g}.")
                     .thresholds(SHARE_STEPS).thresholds_style(cb.GraphThresholdsStyleConfig()
                                                               .mode(common.GraphThresholdsStyleMode.LINE)))
         .with_panel(_series(ids, "Expected loss", f"SELECT $__timeGroupAlias(window_start, $__interval), "
                             f"sum(expected_loss_usd) AS expected_loss {WINDOWS} GROUP BY 1 ORDER BY 1",
                             "currencyUSD", "Sum of PD x LGD x exposure of the loans scored in each window.")))
    d = (d.with_row(dash.Row("Repayments and riskiest loans").id(ids()))
         .with_panel(_series(ids, "Late-payment trend", "SELECT $__timeGroupAlias(window_start, $__interval), "
                             "sum(late_payments)::float / nullif(sum(repayments), 0) AS late_share, "
                             "sum(missed_payments)::float / nullif(sum(repayments), 0) AS missed_share "
                             "FROM repayments_by_window WHERE $__timeFilter(window_start) GROUP BY 1 ORDER BY 1",
                             "percentunit", "Share of repayments that were late or missed, per window.")
                     .thresholds(steps((None, "green"), (0.1, "orange"), (0.25, "red"))))
         .with_panel(table.Panel().id(ids()).title("Riskiest recent loans").datasource(POSTGRES)
                     .description("Highest probabilities in the range, with the model's reason codes.")
                     .with_target(Sql(
                         "SELECT trigger_time, loan_id, product, region, grade_band, probability, "
                         f"expected_loss_usd, reason_codes, model_version {SCORES} "
                         "ORDER BY probability DESC NULLS LAST, trigger_time DESC LIMIT 25"))
                     .thresholds(pd_steps).height(8).span(12)
                     .override_by_name("probability", [_prop("unit", "percentunit"), _prop("min", 0), _prop("max", 1),
                                                       _prop("decimals", 1),
                                                       _prop("custom.cellOptions", {"type": "color-background"})])
                     .override_by_name("expected_loss_usd", [_prop("unit", "currencyUSD"), _prop("min", 0)])))
    return d.build()


def _prop(key: str, value: object):
    from grafana_foundation_sdk.models.dashboard import DynamicConfigValue
    return DynamicConfigValue(id_val=key, value=value)


__all__ = ["UID", "build", "DataSourceRef"]
