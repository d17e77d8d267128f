"""The storage schema, declared once as data: every measurement, its tags and its fields with unit and type.

Agents, the collector's validation, alert rules, dashboards and the simulator import names from here;
nobody spells a field name of their own. Field names carry their unit (``power_w``, ``temp_c``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from dcim.errors import SchemaError
from dcim.gpu_fields import GPU_FIELDS
from dcim.record import FieldValue, Record, UInt

FieldType = Literal["float", "int", "uint", "bool", "str"]
FieldKind = Literal["gauge", "counter", "state", "info"]


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a measurement."""

    name: str
    type: FieldType
    unit: str
    description: str
    kind: FieldKind = "gauge"


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measurement: its tags (location first, then device) and its fields by name."""

    name: str
    description: str
    tags: tuple[str, ...]
    fields: Mapping[str, Field]

    def field(self, name: str) -> Field:
        try:
            return self.fields[name]
        except KeyError:
            msg = f"measurement {self.name!r} has no field {name!r}"
            raise SchemaError(msg) from None


# --- tags -------------------------------------------------------------------------------------

#: The location hierarchy, outermost first.
LOCATION_TAGS: tuple[str, ...] = ("site", "room", "row", "rack")

TAGS: dict[str, str] = {
    "site": "site (campus or building) name",
    "room": "data hall / room",
    "row": "row of racks",
    "rack": "rack",
    "node": "GPU server host name",
    "gpu": "GPU index on its node (NVML index)",
    "uuid": "GPU UUID",
    "model": "device model",
    "pdu": "rack PDU name",
    "feed": "power feed of a PDU (A or B)",
    "phase": "PDU input phase (L1, L2, L3)",
    "bank": "PDU outlet bank / breaker group",
    "circuit": "PDU input circuit a phase row is measured on, where it is not the line itself: "
               "L1-N (line to neutral) or L1-L2 (line to line, delta wiring)",
    "outlet": "PDU outlet number",
    "sensor": "environment probe name",
    "loop": "coolant loop",
    "cdu": "coolant distribution unit",
    "ups": "UPS name",
    "switch": "network switch name",
    "ifname": "network interface name",
    "xid": "XID error code",
    "component": "telemetry component (gpu, snmp, collector, engine)",
    "device": "polled device name",
    "host": "host the component runs on",
    "alertname": "alert rule name",
    "severity": "alert severity (info, warning, critical, page)",
    "action": "remediation action on a node (drain, cordon, resume, webhook)",
    "status": "state of a remediation action (planned, suppressed, held, done, failed, skipped)",
    "driver": "where a remediation action went (slurm, kubernetes, webhook, log)",
}


def _fields(*items: Field) -> dict[str, Field]:
    return {f.name: f for f in items}


F = Field

# --- measurements -----------------------------------------------------------------------------

# One row per GPU field in dcim.gpu_fields, which also drives the GPU agent's NVML reads, its /metrics
# names and the simulated GPU.
GPU = Measurement(
    "gpu",
    "One GPU, read through NVML by the GPU agent.",
    (*LOCATION_TAGS, "node", "gpu", "uuid", "model"),
    _fields(*(F(f.name, f.type, f.unit, f.description, f.kind) for f in GPU_FIELDS)),
)

GPU_XID = Measurement(
    "gpu_xid",
    "XID errors per code on one GPU (every code is kept, not only the last).",
    (*LOCATION_TAGS, "node", "gpu", "uuid", "xid"),
    _fields(
        F("count_total", "int", "1", "XID errors of this code since the agent started", "counter"),
        F("last_time_s", "float", "s", "unix time of the last XID of this code", "state"),
    ),
)

PDU = Measurement(
    "pdu",
    "One rack PDU, device totals, read over SNMP.",
    (*LOCATION_TAGS, "pdu", "feed", "model"),
    _fields(
        F("power_w", "float", "W", "active power, all phases"),
        F("apparent_power_va", "float", "VA", "apparent power, all phases"),
        F("power_factor", "float", "1", "power factor"),
        F("peak_power_w", "float", "W", "peak active power since last reset"),
        F("energy_j", "float", "J", "energy since last reset", "counter"),
        F("load_state", "str", "1", "device-reported load state: low, normal, near_overload, overload", "state"),
        F("frequency_hz", "float", "Hz", "input frequency"),
        F("current_a", "float", "A", "inlet current (RMS) where the PDU reports one for the whole inlet"),
        F("voltage_v", "float", "V", "inlet voltage (RMS) where the PDU reports one for the whole inlet"),
    ),
)

PDU_PHASE = Measurement(
    "pdu_phase",
    "One input phase of a rack PDU: a line (current on L1), or with a `circuit` tag a line-to-neutral "
    "or line-to-line circuit (voltage and power between L1 and L2).",
    (*LOCATION_TAGS, "pdu", "feed", "phase", "circuit"),
    _fields(
        F("current_a", "float", "A", "phase current (RMS)"),
        F("voltage_v", "float", "V", "phase voltage (RMS)"),
        F("power_w", "float", "W", "phase active power"),
        F("apparent_power_va", "float", "VA", "phase apparent power"),
        F("power_factor", "float", "1", "phase power factor"),
        F("energy_j", "float", "J", "phase energy", "counter"),
        F("load_state", "str", "1", "device-reported load state: low, normal, near_overload, overload", "state"),
    ),
)

PDU_BANK = Measurement(
    "pdu_bank",
    "One outlet bank (breaker group) of a rack PDU.",
    (*LOCATION_TAGS, "pdu", "feed", "bank"),
    _fields(
        F("current_a", "float", "A", "bank current"),
        F("load_state", "str", "1", "device-reported load state", "state"),
        F("current_before_alarm_a", "float", "A",
          "current the bank can still draw before its alarm threshold (device-computed)"),
    ),
)

PDU_OUTLET = Measurement(
    "pdu_outlet",
    "One metered outlet of a rack PDU.",
    (*LOCATION_TAGS, "pdu", "feed", "outlet", "phase"),
    _fields(
        F("current_a", "float", "A", "outlet current"),
        F("power_w", "float", "W", "outlet active power"),
        F("energy_j", "float", "J", "outlet energy", "counter"),
        F("on", "bool", "1", "outlet switched on", "state"),
        F("voltage_v", "float", "V", "outlet voltage (RMS)"),
        F("apparent_power_va", "float", "VA", "outlet apparent power"),
        F("power_factor", "float", "1", "outlet power factor"),
        F("frequency_hz", "float", "Hz", "outlet frequency"),
    ),
)

ENV = Measurement(
    "env",
    "An environment probe (temperature / humidity) on a PDU, UPS, CDU or switch.",
    (*LOCATION_TAGS, "pdu", "ups", "switch", "sensor"),
    _fields(
        F("temp_c", "float", "degC", "air temperature"),
        F("humidity_pct", "float", "%", "relative humidity"),
    ),
)

COOLANT_LOOP = Measurement(
    "coolant_loop",
    "One secondary coolant loop served by a CDU.",
    (*LOCATION_TAGS[:3], "loop", "cdu"),
    _fields(
        F("supply_temp_c", "float", "degC", "coolant supply temperature to the racks"),
        F("return_temp_c", "float", "degC", "coolant return temperature from the racks"),
        F("setpoint_c", "float", "degC", "CDU supply-temperature setpoint"),
        F("flow_lpm", "float", "L/min", "coolant flow"),
        F("supply_pressure_kpa", "float", "kPa", "supply pressure"),
        F("return_pressure_kpa", "float", "kPa", "return pressure"),
        F("diff_pressure_kpa", "float", "kPa", "differential pressure supply - return"),
        F("pump_speed_pct", "float", "%", "pump speed"),
        F("heat_w", "float", "W", "heat removed (flow x cp x delta T)"),
        F("facility_supply_temp_c", "float", "degC", "facility (primary) water supply temperature"),
        F("leak", "bool", "1", "leak detected", "state"),
    ),
)

UPS = Measurement(
    "ups",
    "A UPS (RFC 1628 UPS-MIB).",
    (*LOCATION_TAGS, "ups", "phase"),
    _fields(
        F("input_voltage_v", "float", "V", "input voltage"),
        F("output_voltage_v", "float", "V", "output voltage"),
        F("output_current_a", "float", "A", "output current"),
        F("output_power_w", "float", "W", "output active power"),
        F("load_pct", "float", "%", "output load"),
        F("battery_charge_pct", "float", "%", "battery charge remaining"),
        F("battery_runtime_s", "float", "s", "estimated runtime on battery"),
        F("battery_temp_c", "float", "degC", "battery temperature"),
        F("on_battery", "bool", "1", "running on battery", "state"),
        F("input_frequency_hz", "float", "Hz", "input frequency"),
        F("input_current_a", "float", "A", "input current"),
        F("input_power_w", "float", "W", "input active power"),
        F("output_frequency_hz", "float", "Hz", "output frequency"),
        F("output_apparent_power_va", "float", "VA", "output apparent power"),
        F("bypass_voltage_v", "float", "V", "bypass input voltage"),
        F("bypass_current_a", "float", "A", "bypass current"),
        F("bypass_power_w", "float", "W", "bypass active power"),
        F("bypass_frequency_hz", "float", "Hz", "bypass frequency"),
        F("battery_voltage_v", "float", "V", "battery voltage"),
        F("battery_current_a", "float", "A", "battery current (positive: discharging, per UPS-MIB)"),
        F("on_battery_time_s", "float", "s", "time on battery since the last switch to battery (0 on mains)"),
        F("alarms_present", "int", "1", "number of active alarms (upsAlarmsPresent)"),
        F("internal_temp_c", "float", "degC", "UPS internal / ambient temperature"),
    ),
)

COOLING_SENSOR = Measurement(
    "cooling_sensor",
    "One named reading point of an air-side cooling unit (InRow, CRAC/CRAH, Air FM), tagged by the unit's own label.",
    (*LOCATION_TAGS, "cdu", "sensor"),
    _fields(
        F("temp_c", "float", "degC", "temperature (air, coil, refrigerant or setpoint, per the label)"),
        F("humidity_pct", "float", "%", "relative humidity"),
        F("power_w", "float", "W", "cooling demand or output"),
        F("current_a", "float", "A", "current of a component (blower, humidifier)"),
        F("voltage_v", "float", "V", "voltage of a component"),
        F("frequency_hz", "float", "Hz", "drive frequency of a blower"),
        F("fan_speed_pct", "float", "%", "fan speed"),
        F("pressure_kpa", "float", "kPa", "air or refrigerant pressure"),
    ),
)

NETIF = Measurement(
    "netif",
    "One interface of a top-of-rack or fabric switch (IF-MIB).",
    (*LOCATION_TAGS, "switch", "ifname"),
    _fields(
        F("rx_bytes_total", "uint", "B", "octets received (ifHCInOctets)", "counter"),
        F("tx_bytes_total", "uint", "B", "octets sent (ifHCOutOctets)", "counter"),
        F("rx_errors_total", "uint", "1", "inbound errors", "counter"),
        F("tx_errors_total", "uint", "1", "outbound errors", "counter"),
        F("rx_discards_total", "uint", "1", "inbound discards", "counter"),
        F("tx_discards_total", "uint", "1", "outbound discards", "counter"),
        F("oper_up", "bool", "1", "operational status is up", "state"),
        F("speed_bps", "float", "bit/s", "interface speed"),
    ),
)

AGENT = Measurement(
    "agent",
    "Health of a telemetry component and of each device it reads.",
    (*LOCATION_TAGS, "component", "host", "device", "node", "gpu"),
    _fields(
        F("up", "bool", "1", "the device answered the last poll", "state"),
        F("stale", "bool", "1", "no fresh data from the device within its timeout", "state"),
        F("lost", "bool", "1", "the device is lost (e.g. GPU fell off the bus)", "state"),
        F("poll_duration_s", "float", "s", "duration of the last poll"),
        F("errors_total", "int", "1", "poll errors since start", "counter"),
        F("queue_depth", "int", "1", "messages waiting for the broker"),
        F("dropped_total", "int", "1", "messages dropped because the queue was full", "counter"),
        F("spool_bytes", "int", "B", "collector: bytes waiting in its disk spools"),
        F("spool_used_pct", "float", "%", "collector: how full its fullest disk spool is"),
        F("dead_letters_total", "int", "1", "collector: lines refused and dead-lettered since start", "counter"),
        F("unsupported_fields", "str", "1", "fields the device does not support (comma-separated)", "info"),
        F("message", "str", "1", "last error, human readable", "info"),
    ),
)

ALERT = Measurement(
    "alert",
    "Alert transitions written by the alert engine.",
    ("alertname", "severity", *LOCATION_TAGS, "node", "gpu", "pdu", "phase", "loop"),
    _fields(
        F("state", "str", "1", "new state: pending, firing, resolved, inactive", "state"),
        F("previous", "str", "1", "previous state", "state"),
        F("value", "float", "1", "value of the rule's expression at the transition"),
        F("inhibited", "bool", "1", "explained by an alert higher in the topology", "state"),
        F("summary", "str", "1", "rendered summary annotation", "info"),
        F("fingerprint", "str", "1", "stable id of the alert's label set", "info"),
    ),
)

ALERT_ACTION = Measurement(
    "alert_action",
    "Remediation actions on alerts (drain, cordon, resume, webhook): planned, suppressed, held, done or failed.",
    (*LOCATION_TAGS, "loop", "node", "alertname", "action", "status", "driver"),
    _fields(
        F("scope", "str", "1", "what the action covers: node, rack or loop", "info"),
        F("target", "str", "1", "the scope's name: the node, rack or loop", "info"),
        F("alert_state", "str", "1", "the alert's state that called for the action: firing or resolved", "state"),
        F("reason", "str", "1", "the reason given to the scheduler (names the alert)", "info"),
        F("fingerprint", "str", "1", "stable id of the alert", "info"),
        F("detail", "str", "1", "what the driver answered, or why the action waits", "info"),
    ),
)

BROKER = Measurement(
    "broker",
    "The MQTT broker's own counters, from its $SYS topics (Mosquitto, mosquitto(8)), read by the collector.",
    (*LOCATION_TAGS, "host"),
    _fields(
        F("publish_dropped_total", "int", "1", "messages the broker dropped because a client's queue was full "
          "($SYS/broker/publish/messages/dropped)", "counter"),
        F("store_messages", "int", "1", "messages held in the broker's store, queued ones included "
          "($SYS/broker/store/messages/count)"),
        F("store_bytes", "int", "B", "bytes of the messages in the broker's store ($SYS/broker/store/messages/bytes)"),
        F("clients_connected", "int", "1", "clients connected ($SYS/broker/clients/connected)"),
    ),
)

MEASUREMENTS: dict[str, Measurement] = {
    m.name: m
    for m in (GPU, GPU_XID, PDU, PDU_PHASE, PDU_BANK, PDU_OUTLET, ENV, COOLANT_LOOP, UPS, COOLING_SENSOR, NETIF, AGENT,
              BROKER, ALERT, ALERT_ACTION)
}


def measurement(name: str) -> Measurement:
    """Look up a measurement by name; SchemaError names the unknown one."""
    try:
        return MEASUREMENTS[name]
    except KeyError:
        msg = f"unknown measurement {name!r} (known: {', '.join(sorted(MEASUREMENTS))})"
        raise SchemaError(msg) from None


_PY_TYPES: dict[FieldType, tuple[type, ...]] = {
    "float": (float, int),
    "int": (int,),
    "uint": (int,),
    "bool": (bool,),
    "str": (str,),
}


def check_value(meas: Measurement, name: str, value: FieldValue) -> str | None:
    """Return None when ``value`` fits field ``name`` of ``meas``, else the reason it does not."""
    fld = meas.fields.get(name)
    if fld is None:
        return f"unknown field {name!r} for measurement {meas.name!r}"
    t = fld.type
    if t == "bool":
        ok = isinstance(value, bool)
    elif t == "str":
        ok = isinstance(value, str)
    elif isinstance(value, bool) or isinstance(value, str):
        ok = False
    elif t == "float":
        ok = isinstance(value, (float, int)) and not isinstance(value, UInt)
    elif t == "uint":
        ok = isinstance(value, int) and not isinstance(value, float) and value >= 0
    else:  # int
        ok = isinstance(value, int) and not isinstance(value, (float, UInt))
    if ok:
        return None
    return f"field {name!r} of {meas.name!r} must be {t}, got {type(value).__name__} {value!r}"


def validate(record: Record, *, allow_extra_tags: bool = True) -> list[str]:
    """All reasons ``record`` does not fit the schema (empty list when it does)."""
    meas = MEASUREMENTS.get(record.measurement)
    if meas is None:
        return [f"unknown measurement {record.measurement!r}"]
    problems = [p for name, value in record.fields.items() if (p := check_value(meas, name, value))]
    if not allow_extra_tags:
        problems += [f"unknown tag {t!r} for measurement {meas.name!r}" for t in record.tags if t not in meas.tags]
    return problems


def coerce(meas: Measurement, fields: Mapping[str, FieldValue]) -> dict[str, FieldValue]:
    """Convert numeric values to the schema's exact field types (int for int fields, UInt for uint)."""
    out: dict[str, FieldValue] = {}
    for name, value in fields.items():
        t = meas.field(name).type
        if t == "float" and not isinstance(value, bool):
            out[name] = float(value)
        elif t == "int" and not isinstance(value, bool):
            out[name] = int(value)
        elif t == "uint":
            out[name] = UInt(int(value))
        else:
            out[name] = value
    return out


def field_names(meas: Measurement, kinds: Iterable[FieldKind] | None = None) -> list[str]:
    """Field names of a measurement, optionally only those of the given kinds."""
    ks = set(kinds) if kinds is not None else None
    return [f.name for f in meas.fields.values() if ks is None or f.kind in ks]


def markdown() -> str:
    """The whole schema as Markdown tables (docs/schema.md is this output; a test keeps it current)."""
    out = [
        "# Storage schema",
        "",
        "Generated from `dcim/schema.py` by `dcim schema --format markdown`; do not edit by hand.",
        "Field names carry their unit; counters end in `_total` (or are energy/time totals);",
        "tags form the location hierarchy `site`, `room`, `row`, `rack`, then the device.",
        "",
        "## Tags",
        "",
        "| tag | meaning |",
        "| --- | --- |",
    ]
    out += [f"| `{name}` | {desc} |" for name, desc in TAGS.items()]
    for meas in MEASUREMENTS.values():
        out += ["", f"## `{meas.name}`", "", meas.description, "", "Tags: " + ", ".join(f"`{t}`" for t in meas.tags), ""]
        out += ["| field | type | unit | kind | description |", "| --- | --- | --- | --- | --- |"]
        out += [f"| `{f.name}` | {f.type} | {f.unit} | {f.kind} | {f.description} |" for f in meas.fields.values()]
    return "\n".join(out) + "\n"
