"""Runs every panel's query (SQL as the reader role, PromQL over the HTTP API) and draws it to PNG with plotly.

For users without Grafana: each panel becomes one PNG, and the panels are laid out by their gridPos
into one picture per dashboard. Numbers are written as Grafana writes them (grafana/units.py): each
panel's unit, decimals, min and max give its stat text, table cells and axis ticks, so no picture shows a
raw 4.205e+4 or a share axis below 0 %. PNG export uses kaleido 0.2.1 (its own headless Chromium).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import httpx
import pandas as pd

from grafana import macros, units
from grafana.build import dashboards
from grafana.panels import POSTGRES_UID, PROMETHEUS_UID
from loanrisk.errors import LoanRiskError
from loanrisk.settings import Settings

CELL_W, CELL_H = 60, 34  # pixels per Grafana grid column and row
# Time columns of the serving tables that the SQL panels filter on.
TIME_COLUMNS = {"loan_scores_latest": "trigger_time", "risk_by_window": "window_start",
                "repayments_by_window": "window_start"}


class RenderError(LoanRiskError):
    """A panel query failed or PNG export is not possible."""


@dataclass
class PanelResult:
    """One panel's query results: a DataFrame per SQL target, a list of series per PromQL target."""

    panel: dict
    frames: list[pd.DataFrame] = field(default_factory=list)
    series: list[tuple[str, pd.Series]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)


def query_panels(dashboard: dict) -> list[dict]:
    """Panels that run queries (rows excluded), in dashboard order."""
    return [p for p in dashboard.get("panels", []) if p.get("type") != "row" and p.get("targets")]


def data_range(settings: Settings) -> tuple[datetime, datetime]:
    """A time range covering every row of the serving tables (last hour when they are empty)."""
    from loanrisk.serving import serving_connection
    parts = " UNION ALL ".join(f"SELECT min({c}) AS lo, max({c}) AS hi FROM {t}" for t, c in TIME_COLUMNS.items())
    with serving_connection(settings, reader=True) as conn:
        lo, hi = conn.execute(f"SELECT min(lo), max(hi) FROM ({parts}) r").fetchone()  # type: ignore[misc]
    if lo is None:
        now = datetime.now(timezone.utc)
        return now - timedelta(hours=1), now
    pad = max((hi - lo) * 0.02, timedelta(minutes=1))
    return lo - pad, hi + pad


def run_sql(settings: Settings, sql: str) -> pd.DataFrame:
    """One expanded SQL query as the read-only role."""
    from loanrisk.serving import serving_connection
    with serving_connection(settings, reader=True) as conn:
        cur = conn.execute(sql)
        cols = [d.name for d in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=cols)


def run_promql(settings: Settings, expr: str, start: datetime, end: datetime, step_s: float) -> list[dict]:
    """query_range against the stack's Prometheus; the result list (one entry per series)."""
    try:
        resp = httpx.get(f"{settings.prometheus.url}/api/v1/query_range", timeout=30,
                         params={"query": expr, "start": start.timestamp(), "end": end.timestamp(), "step": step_s})
    except httpx.HTTPError as exc:
        raise RenderError(f"Prometheus at {settings.prometheus.url} did not answer ({exc.__class__.__name__}): "
                          "is the stack up (riskctl stack status)?") from None
    body = resp.json()
    if body.get("status") != "success":
        raise RenderError(f"PromQL failed: {body.get('error')}: {expr}")
    return body["data"]["result"]


def legend(template: str, labels: dict[str, str], fallback: str) -> str:
    """A series name from the target's legendFormat ({{label}} placeholders)."""
    if not template:
        return fallback
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)[:48]


def run_panel(settings: Settings, panel: dict, values: dict[str, str], start: datetime, end: datetime,
              prom_window: tuple[datetime, datetime] | None = None) -> PanelResult:
    """Every target of one panel, expanded and executed."""
    result = PanelResult(panel)
    for target in panel["targets"]:
        uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
        if uid == POSTGRES_UID:
            sql = macros.expand_sql(target["rawSql"], start, end, values)
            result.queries.append(sql)
            result.frames.append(run_sql(settings, sql))
        elif uid == PROMETHEUS_UID:
            p_start, p_end = prom_window or (start, end)
            step = macros.auto_interval(p_start, p_end, min_interval_s=settings.prometheus.scrape_interval_s)
            expr = macros.expand_promql(target["expr"], p_start, p_end, step, settings.prometheus.scrape_interval_s,
                                        values)
            result.queries.append(expr)
            for s in run_promql(settings, expr, p_start, p_end, step):
                points = pd.Series([float(v) for _, v in s["values"]],
                                   index=pd.to_datetime([float(t) for t, _ in s["values"]], unit="s", utc=True))
                result.series.append((legend(target.get("legendFormat", ""), s["metric"], target["refId"]), points))
        else:
            raise RenderError(f"panel {panel.get('title')!r}: unknown datasource uid {uid!r}")
    return result


def field_config(panel: dict, column: str | None = None) -> dict:
    """The panel's field defaults, with the overrides that name ``column`` applied (unit, decimals, min, max)."""
    config = dict(panel.get("fieldConfig", {}).get("defaults", {}))
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override.get("matcher", {})
        if column is not None and matcher.get("id") == "byName" and matcher.get("options") == column:
            config.update({p["id"]: p["value"] for p in override.get("properties", [])})
    return config


def _value_axis(config: dict, values: list[float]) -> dict:
    """plotly axis settings for a value axis in the panel's unit: its min/max (or the data's extent) and
    ticks labelled in that unit."""
    unit = config.get("unit") or "none"
    lo, hi = units.axis_range(values, config.get("min"), config.get("max"))
    ticks, labels = units.axis_ticks(lo, hi, unit, config.get("decimals"))
    return {"range": [lo, hi], "tickmode": "array", "tickvals": ticks, "ticktext": labels}


def _finite(values: object) -> list[float]:
    return [float(v) for v in pd.to_numeric(pd.Series(values), errors="coerce").dropna()]


def figure(res: PanelResult, width: int, height: int):
    """The panel drawn with plotly, sized like the panel on the Grafana grid."""
    import plotly.graph_objects as go

    panel, kind = res.panel, res.panel["type"]
    config = field_config(panel)
    fig = go.Figure()
    frame = res.frames[0] if res.frames else pd.DataFrame()
    if kind == "stat":
        text = stat_text(res)
        fig.add_annotation(text=f"<b>{text}</b>", x=0.5, y=0.45, xref="paper", yref="paper", showarrow=False,
                           font={"size": 26 if len(text) < 12 else 16})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    elif kind == "timeseries":
        if res.series:
            for name, s in res.series:
                fig.add_trace(go.Scatter(x=s.index, y=s.values, name=name, mode="lines"))
        elif "time" in frame.columns:
            t = pd.to_datetime(frame["time"].astype(float), unit="s", utc=True)
            for col in [c for c in frame.columns if c != "time"]:
                fig.add_trace(go.Scatter(x=t, y=frame[col].astype(float), name=col, mode="lines+markers"))
        fig.update_yaxes(**_value_axis(config, [v for tr in fig.data for v in _finite(tr.y)]))
    elif kind == "barchart":
        x = panel.get("options", {}).get("xField") or frame.columns[0]
        cols = [c for c in frame.columns if c != x]
        for col in cols:
            fig.add_trace(go.Bar(x=frame[x].astype(str), y=frame[col], name=col))
        fig.update_layout(barmode="stack")
        totals = frame[cols].apply(pd.to_numeric, errors="coerce").sum(axis=1) if cols else []
        fig.update_yaxes(**_value_axis(config, _finite(totals)))
    elif kind == "histogram":
        col = frame.columns[0]
        size = panel.get("options", {}).get("bucketSize")
        fig.add_trace(go.Histogram(x=frame[col].astype(float), xbins={"size": size} if size else None, name=col))
        fig.update_xaxes(**_value_axis(config, _finite(frame[col])))
    elif kind == "table":
        cells = [frame[c].map(lambda v, c=c: _cell(v, field_config(panel, c))).tolist() for c in frame.columns]
        fig.add_trace(go.Table(header={"values": list(frame.columns), "align": "left"},
                               cells={"values": cells, "align": "left", "height": 20}))
    else:
        raise RenderError(f"panel type {kind!r} cannot be rendered")
    # Axes the panel's unit does not label (time, histogram counts) still never switch to 1e+4 notation.
    fig.update_xaxes(exponentformat="none", separatethousands=True)
    fig.update_yaxes(exponentformat="none", separatethousands=True)
    fig.update_layout(title={"text": panel.get("title", ""), "font": {"size": 14}}, width=width, height=height,
                      margin={"l": 50, "r": 20, "t": 40, "b": 35}, template="plotly_white",
                      showlegend=kind in ("timeseries", "barchart") and len(fig.data) > 1,
                      legend={"font": {"size": 9}})
    return fig


def _cell(v: object, config: dict) -> str:
    """A table cell: numbers in the column's unit (a plain number without one), times to the minute."""
    if isinstance(v, (int, float, Decimal)) and not isinstance(v, bool):  # PostgreSQL numeric arrives as Decimal
        return units.format_value(float(v), config.get("unit") or "none", config.get("decimals"))
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    text = "" if v is None else str(v)
    return text if len(text) <= 40 else text[:39] + "…"


def stat_text(res: PanelResult) -> str:
    """What a stat panel shows: its value in the panel's unit and decimals, or its text field."""
    value, text = _stat_value(res)
    if text is not None:
        return text
    if value is None:
        return "No data"
    config = field_config(res.panel)
    return units.format_value(value, config.get("unit") or "none", config.get("decimals"))


def _stat_value(res: PanelResult) -> tuple[float | None, str | None]:
    """The number (or text, for a string field) a stat panel shows: the last non-null value."""
    fields = res.panel.get("options", {}).get("reduceOptions", {}).get("fields", "")
    if res.series:
        vals = [s.dropna() for _, s in res.series]
        vals = [s.iloc[-1] for s in vals if len(s)]
        return (float(vals[0]) if vals else None), None
    if not res.frames:
        return None, "No data"
    frame = res.frames[0]
    if fields:
        col = fields.strip("/^$")
        return None, str(frame[col].iloc[0]) if len(frame) else "-"
    last = frame.iloc[-1, 0] if len(frame) and len(frame.columns) else None
    return (None if last is None or pd.isna(last) else float(last)), None


class PngWriter:
    """plotly -> PNG through kaleido 0.2.1's PlotlyScope (one Chromium for every panel)."""

    def __init__(self) -> None:
        try:
            from kaleido.scopes.plotly import PlotlyScope
        except ImportError:
            raise RenderError("PNG export needs kaleido 0.2.1 (requirements/platform.lock): run make setup") from None
        import plotly
        plotlyjs = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        # Local plotly.js and no MathJax: the bundled Chromium must not fetch anything from a CDN.
        self.scope = PlotlyScope(plotlyjs=str(plotlyjs), mathjax=False)

    def png(self, fig) -> bytes:
        """The figure as PNG bytes."""
        try:
            return self.scope.transform(fig.to_dict(), format="png", width=fig.layout.width,
                                        height=fig.layout.height)
        except ValueError as exc:
            raise RenderError(f"PNG export failed: {exc}") from None


def compose(tiles: list[tuple[dict, bytes]], path: Path) -> None:
    """Lay the panel PNGs out by gridPos into one dashboard picture."""
    from PIL import Image
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p, _ in tiles)
    top = min(p["gridPos"]["y"] for p, _ in tiles)
    canvas = Image.new("RGB", (24 * CELL_W, (bottom - top) * CELL_H), "white")
    for panel, png in tiles:
        g = panel["gridPos"]
        canvas.paste(Image.open(io.BytesIO(png)).convert("RGB"), (g["x"] * CELL_W, (g["y"] - top) * CELL_H))
    canvas.save(path, optimize=True)


def render(settings: Settings, out_dir: Path, start: datetime | None = None, end: datetime | None = None,
           prom_minutes: int = 30, panels_too: bool = False) -> list[Path]:
    """Render both dashboards (one composed PNG each, plus one PNG per panel when asked); returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if start is None or end is None:
        start, end = data_range(settings)
    now = datetime.now(timezone.utc)
    prom_window = (now - timedelta(minutes=prom_minutes), now)
    writer, written = PngWriter(), []
    for name, dashboard in dashboards(settings).items():
        values = macros.variable_values(dashboard)
        tiles = []
        for panel in query_panels(dashboard):
            panel = {**panel, "title": macros.substitute_variables(panel.get("title", ""), values)}
            res = run_panel(settings, panel, values, start, end, prom_window)
            g = panel["gridPos"]
            png = writer.png(figure(res, g["w"] * CELL_W, g["h"] * CELL_H))
            tiles.append((panel, png))
            if panels_too:
                slug = re.sub(r"[^a-z0-9]+", "-", panel["title"].lower()).strip("-")
                path = out_dir / Path(name).stem / f"{panel['id']:02d}-{slug}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(png)
                written.append(path)
        path = out_dir / f"{Path(name).stem}.png"
        compose(tiles, path)
        written.append(path)
    return written
