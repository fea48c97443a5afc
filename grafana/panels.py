"""Shared panel pieces: the two datasources, a PostgreSQL rawSql query type, PromQL queries and thresholds."""

from __future__ import annotations

import typing

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as model

# The uids of grafana/provisioning/datasources/datasources.yaml (a unit test keeps them in step).
POSTGRES_UID = "loanrisk-postgres"
PROMETHEUS_UID = "loanrisk-prometheus"
POSTGRES_TYPE = "grafana-postgresql-datasource"
POSTGRES = model.DataSourceRef(type_val=POSTGRES_TYPE, uid=POSTGRES_UID)
PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)

SqlFormat = typing.Literal["table", "time_series"]


class SqlDataquery(cogvariants.Dataquery):
    """A raw SQL query of Grafana's PostgreSQL datasource (the SDK has no type for it)."""

    def __init__(self, raw_sql: str, fmt: SqlFormat = "table", ref_id: str = "A") -> None:
        self.raw_sql = raw_sql
        self.format = fmt
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        """The target as Grafana stores it (code editor, raw query)."""
        return {"refId": self.ref_id, "datasource": POSTGRES.to_json(), "editorMode": "code",
                "format": self.format, "rawQuery": True, "rawSql": self.raw_sql}


class Sql(cogbuilder.Builder[SqlDataquery]):
    """Builder for :class:`SqlDataquery`, usable wherever the SDK takes a Dataquery builder."""

    def __init__(self, raw_sql: str, fmt: SqlFormat = "table", ref_id: str = "A") -> None:
        self._internal = SqlDataquery(" ".join(raw_sql.split()), fmt, ref_id)

    def build(self) -> SqlDataquery:
        """The query object."""
        return self._internal


def prom(expr: str, legend: str = "", ref_id: str = "A", instant: bool = False) -> prometheus.Dataquery:
    """A PromQL target on the provisioned Prometheus datasource."""
    q = prometheus.Dataquery().expr(" ".join(expr.split())).ref_id(ref_id).datasource(PROMETHEUS)
    if legend:
        q = q.legend_format(legend)
    return q.instant() if instant else q.range()


def steps(*pairs: tuple[float | None, str]) -> dash.ThresholdsConfig:
    """Absolute thresholds from (value, colour) pairs; the first value is the base (None)."""
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=v, color=c) for v, c in pairs])


class Ids:
    """Panel ids 1, 2, 3, ... in the order panels are added."""

    def __init__(self) -> None:
        self._n = 0

    def __call__(self) -> int:
        self._n += 1
        return self._n
