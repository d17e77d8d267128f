"""An InfluxQL dataquery on grafana-foundation-sdk's ``Dataquery`` variant, and helpers that spell InfluxQL.

The SDK (10.1.x) ships builders for every panel but no InfluxDB query type; this is the small one
we need: a raw InfluxQL ``query`` with its ``refId``, ``resultFormat`` and ``alias``, as Grafana's
InfluxDB datasource stores it. Field names go through the schema, so a renamed field fails the build.
"""

from __future__ import annotations

from decimal import Decimal

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from dcim.schema import Measurement

DATASOURCE_TYPE = "influxdb"
ResultFormat = Literal["time_series", "table"]


class InfluxQuery(cogvariants.Dataquery):
    """A raw InfluxQL query target of Grafana's InfluxDB datasource."""

    def __init__(self, ref_id: str = "A", query: str = "", result_format: ResultFormat = "time_series",
                 alias: str | None = None, datasource: DataSourceRef | None = None,
                 hide: bool | None = None) -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format
        self.alias = alias
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        ds = data.get("datasource")
        return cls(
            ref_id=data.get("refId", "A"),
            query=data.get("query", ""),
            result_format=data.get("resultFormat", "time_series"),
            alias=data.get("alias"),
            datasource=DataSourceRef.from_json(ds) if isinstance(ds, dict) else None,
            hide=data.get("hide"),
        )


def variant_config() -> cogruntime.DataqueryConfig:
    """What the SDK's runtime needs to decode our targets back into InfluxQuery objects."""
    return cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=InfluxQuery.from_json)


def register() -> None:
    """Teach the SDK runtime our dataquery (idempotent), so ``Dashboard.from_json`` keeps InfluxQL targets."""
    cogruntime.register_dataquery_variant(variant_config())


class Influx(cogbuilder.Builder[InfluxQuery]):
    """Builder for InfluxQuery, in the SDK's style: ``Influx(q).ref_id("B").alias("$tag_rack").table()``."""

    def __init__(self, query: str = "") -> None:
        self._internal = InfluxQuery(query=query)

    def build(self) -> InfluxQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def query(self, query: str) -> Self:
        self._internal.query = query
        return self

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self

    def table(self) -> Self:
        self._internal.result_format = "table"
        return self

    def datasource(self, ref: DataSourceRef) -> Self:
        self._internal.datasource = ref
        return self


# --- spelling InfluxQL -----------------------------------------------------------------------


def number(x: float) -> str:
    """A number as an InfluxQL literal: plain decimal digits, since InfluxQL has no exponent notation
    (``1.14294e+06`` is a parse error) and ``:g`` would also round to six digits."""
    if float(x).is_integer():
        return str(int(x))
    return format(Decimal(repr(float(x))), "f")  # the shortest repr's digits, never an exponent


def fld(meas: Measurement, name: str) -> str:
    """A quoted field name, checked against the schema (SchemaError when it does not exist)."""
    meas.field(name)
    return f'"{name}"'


def tag_match(*tags: str) -> list[str]:
    """``"rack" =~ /^$rack$/`` for each tag: Grafana expands multi-value variables into ``(a|b)``."""
    return [f'"{t}" =~ /^${t}$/' for t in tags]


def where(*conds: str) -> str:
    """A WHERE clause ending in ``$timeFilter``, so every panel follows the time picker."""
    return "WHERE " + " AND ".join([*conds, "$timeFilter"])


def optional_tag_match(*tags: str) -> list[str]:
    """Like tag_match, but a series without the tag also matches (alerts carry only the tags of their rule)."""
    return [f'("{t}" =~ /^${t}$/ OR "{t}" = \'\')' for t in tags]
