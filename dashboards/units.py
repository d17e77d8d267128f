"""Grafana unit ids for the schema's units, so every panel's unit comes from the field it shows."""

from __future__ import annotations

from dcim.errors import SchemaError
from dcim.schema import Measurement

#: Schema unit -> Grafana unit id (grafana-data ``valueFormats/categories.ts``).
GRAFANA_UNITS: dict[str, str] = {
    "W": "watt",
    "VA": "voltamp",
    "J": "joule",
    "A": "amp",
    "V": "volt",
    "Hz": "hertz",
    # Grafana has no fixed MHz unit; a custom suffix keeps the driver's value unscaled.
    "MHz": "suffix: MHz",
    "degC": "celsius",
    "%": "percent",
    "L/min": "flowlpm",
    "kPa": "pressurekpa",
    "B": "bytes",
    "s": "s",
    "bit/s": "bps",
    "B/s": "Bps",  # bytes/sec(SI)
    "1": "none",
}

#: Units of derived quantities that no schema field carries.
KWH = "kwatth"


def grafana_unit(unit: str) -> str:
    """The Grafana unit id for a schema unit; SchemaError names a unit nobody mapped yet."""
    try:
        return GRAFANA_UNITS[unit]
    except KeyError:
        msg = f"no Grafana unit for schema unit {unit!r}; add it to dashboards.units.GRAFANA_UNITS"
        raise SchemaError(msg) from None


def unit_of(meas: Measurement, field: str) -> str:
    """The Grafana unit id of one schema field (SchemaError when the field does not exist)."""
    return grafana_unit(meas.field(field).unit)


def currency_unit(code: str) -> str:
    """Grafana's currency unit for an ISO 4217 code, e.g. EUR -> currencyEUR."""
    return f"currency{code.upper()}"
